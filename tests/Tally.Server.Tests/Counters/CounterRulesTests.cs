using Tally.Server.Counters;

namespace Tally.Server.Tests.Counters;

/// <summary>The rule book on its own: one command against one state, no store, no HTTP.</summary>
public class CounterRulesTests
{
    private const long Now = 1_800_000_000_000;
    private const long Earlier = 1_700_000_000_000;
    private const string Name = "c";

    private static Counter At(long value, long? min = null, long? max = null, long initial = 0, long version = 7) =>
        new(Name, value, initial, min, max, version, Earlier, Earlier);

    private static CounterFields Fields(long? value = null, long? initial = null) => new(
        value is { } v ? Optional<long>.Of(v) : default,
        initial is { } i ? Optional<long>.Of(i) : default,
        default,
        default);

    private static CommandResult Apply(CounterCommand command, Counter? current) => CounterRules.Apply(command, current, Now);

    private static void AssertFailed(CommandResult result, string code)
    {
        Assert.Equal(CommandStatus.Failed, result.Status);
        Assert.Equal(code, result.Error?.Code);
        Assert.False(string.IsNullOrWhiteSpace(result.Error?.Detail));
        Assert.False(result.Changed);
        Assert.Null(result.Counter);
    }

    // ---- get ----

    [Fact]
    public void GetMissingIsCounterNotFound() =>
        AssertFailed(Apply(CounterCommand.Get(Name), null), ErrorCodes.CounterNotFound);

    [Fact]
    public void GetReturnsTheCounterAndChangesNothing()
    {
        var current = At(5);
        var result = Apply(CounterCommand.Get(Name), current);
        Assert.Equal(CommandStatus.Ok, result.Status);
        Assert.Same(current, result.Counter);
        Assert.False(result.Changed);
    }

    // ---- increment and decrement ----

    // Created or not, an increment or decrement answers Ok (HTTP 200, API.md); only PUT reports creation.
    [Fact]
    public void IncrementMissingCreatesAtZeroWithoutBoundsThenAdds()
    {
        var result = Apply(CounterCommand.Increment(Name, 5), null);
        Assert.Equal(CommandStatus.Ok, result.Status);
        Assert.True(result.Changed);
        Assert.Equal(new Counter(Name, 5, 0, null, null, 1, Now, Now), result.Counter);
    }

    [Fact]
    public void DecrementMissingCreatesAtZeroWithoutBoundsThenSubtracts()
    {
        var result = Apply(CounterCommand.Decrement(Name, 5), null);
        Assert.Equal(CommandStatus.Ok, result.Status);
        Assert.True(result.Changed);
        Assert.Equal(new Counter(Name, -5, 0, null, null, 1, Now, Now), result.Counter);
    }

    [Fact]
    public void IncrementAddsBumpsVersionAndKeepsTheRest()
    {
        var result = Apply(CounterCommand.Increment(Name, 3), At(10, min: -5, max: 100, initial: 2, version: 7));
        Assert.Equal(CommandStatus.Ok, result.Status);
        Assert.True(result.Changed);
        Assert.Equal(new Counter(Name, 13, 2, -5, 100, 8, Earlier, Now), result.Counter);
    }

    [Fact]
    public void DecrementSubtractsBumpsVersionAndKeepsTheRest()
    {
        var result = Apply(CounterCommand.Decrement(Name, 3), At(10, min: -5, max: 100, initial: 2, version: 7));
        Assert.Equal(new Counter(Name, 7, 2, -5, 100, 8, Earlier, Now), result.Counter);
    }

    [Fact]
    public void IncrementToExactlyMaxSucceeds() =>
        Assert.Equal(10, Apply(CounterCommand.Increment(Name, 3), At(7, max: 10)).Counter?.Value);

    [Fact]
    public void DecrementToExactlyMinSucceeds() =>
        Assert.Equal(-10, Apply(CounterCommand.Decrement(Name, 3), At(-7, min: -10)).Counter?.Value);

    [Fact]
    public void IncrementAtMaxReturnsOutOfRangeCarryingTheCounter()
    {
        var current = At(10, min: 0, max: 10);
        var result = Apply(CounterCommand.Increment(Name, 1), current);
        AssertFailed(result, ErrorCodes.OutOfRange);
        Assert.Equal(current, result.Error!.Current);
    }

    [Fact]
    public void DecrementAtMinReturnsOutOfRangeCarryingTheCounter()
    {
        var current = At(0, min: 0, max: 10);
        var result = Apply(CounterCommand.Decrement(Name, 1), current);
        AssertFailed(result, ErrorCodes.OutOfRange);
        Assert.Equal(current, result.Error!.Current);
    }

    [Fact]
    public void IncrementByMoreThanTheRoomFailsWhole()
    {
        // by 5 with room for 3: nothing is applied, not even the 3 that would fit.
        var current = At(7, max: 10);
        var result = Apply(CounterCommand.Increment(Name, 5), current);
        AssertFailed(result, ErrorCodes.OutOfRange);
        Assert.Equal(7, result.Error!.Current!.Value);
    }

    [Fact]
    public void DecrementByMoreThanTheRoomFailsWhole()
    {
        var result = Apply(CounterCommand.Decrement(Name, 5), At(-7, min: -10));
        AssertFailed(result, ErrorCodes.OutOfRange);
        Assert.Equal(-7, result.Error!.Current!.Value);
    }

    [Theory]
    [InlineData(long.MaxValue, 1)]
    [InlineData(long.MaxValue, long.MaxValue)]
    [InlineData(long.MaxValue - 2, 5)]
    [InlineData(1, long.MaxValue)]
    [InlineData(4611686018427387904, 4611686018427387904)] // 2^62 + 2^62 = 2^63
    public void IncrementPastLongMaxValueNeverWraps(long value, long by)
    {
        var result = Apply(CounterCommand.Increment(Name, by), At(value));
        AssertFailed(result, ErrorCodes.OutOfRange);
        Assert.Equal(value, result.Error!.Current!.Value);
    }

    [Theory]
    [InlineData(long.MinValue, 1)]
    [InlineData(long.MinValue, long.MaxValue)]
    [InlineData(long.MinValue + 2, 5)]
    [InlineData(-2, long.MaxValue)]
    public void DecrementPastLongMinValueNeverWraps(long value, long by)
    {
        var result = Apply(CounterCommand.Decrement(Name, by), At(value));
        AssertFailed(result, ErrorCodes.OutOfRange);
        Assert.Equal(value, result.Error!.Current!.Value);
    }

    [Theory]
    [InlineData(0, long.MaxValue, long.MaxValue)]
    [InlineData(long.MaxValue - 1, 1, long.MaxValue)]
    [InlineData(long.MinValue, long.MaxValue, -1)]
    public void IncrementUpToLongMaxValueSucceeds(long value, long by, long expected) =>
        Assert.Equal(expected, Apply(CounterCommand.Increment(Name, by), At(value)).Counter?.Value);

    [Theory]
    [InlineData(-1, long.MaxValue, long.MinValue)]
    [InlineData(0, long.MaxValue, -long.MaxValue)]
    [InlineData(long.MinValue + 1, 1, long.MinValue)]
    [InlineData(long.MaxValue, long.MaxValue, 0)]
    public void DecrementDownToLongMinValueSucceeds(long value, long by, long expected) =>
        Assert.Equal(expected, Apply(CounterCommand.Decrement(Name, by), At(value)).Counter?.Value);

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(long.MinValue)]
    public void IncrementOrDecrementByLessThanOneIsInvalidAmount(long by)
    {
        AssertFailed(Apply(CounterCommand.Increment(Name, by), At(5)), ErrorCodes.InvalidAmount);
        AssertFailed(Apply(CounterCommand.Decrement(Name, by), At(5)), ErrorCodes.InvalidAmount);
        AssertFailed(Apply(CounterCommand.Increment(Name, by), null), ErrorCodes.InvalidAmount);
    }

    [Theory]
    [InlineData("")]
    [InlineData("-a")]
    [InlineData("a b")]
    [InlineData("é")]
    [InlineData("a\n")]
    [InlineData("a/b")]
    public void CommandOnInvalidNameIsInvalidName(string name) =>
        AssertFailed(CounterRules.Apply(CounterCommand.Increment(name, 1), null, Now), ErrorCodes.InvalidName);

    [Fact]
    public void NameOf128CharactersIsValidAnd129IsNot()
    {
        Assert.True(CounterRules.Apply(CounterCommand.Increment(new string('a', 128), 1), null, Now).Succeeded);
        AssertFailed(CounterRules.Apply(CounterCommand.Increment(new string('a', 129), 1), null, Now), ErrorCodes.InvalidName);
    }

    // ---- preconditions ----

    [Fact]
    public void IfMatchAtTheCurrentVersionApplies() =>
        Assert.Equal(6, Apply(CounterCommand.Increment(Name, 1, Precondition.IfMatch(7)), At(5, version: 7)).Counter?.Value);

    [Fact]
    public void IfMatchWithSeveralVersionsAppliesWhenOneMatches() =>
        Assert.Equal(6, Apply(CounterCommand.Increment(Name, 1, Precondition.IfMatch(3, 7, 9)), At(5, version: 7)).Counter?.Value);

    [Fact]
    public void IfMatchAtAnotherVersionIsVersionMismatch()
    {
        var current = At(5, version: 7);
        AssertFailed(Apply(CounterCommand.Increment(Name, 1, Precondition.IfMatch(6)), current), ErrorCodes.VersionMismatch);
        AssertFailed(Apply(CounterCommand.Decrement(Name, 1, Precondition.IfMatch(8)), current), ErrorCodes.VersionMismatch);
        AssertFailed(Apply(CounterCommand.Put(Name, Fields(value: 1), Precondition.IfMatch(6)), current), ErrorCodes.VersionMismatch);
        AssertFailed(Apply(CounterCommand.Reset(Name, Precondition.IfMatch(6)), current), ErrorCodes.VersionMismatch);
        AssertFailed(Apply(CounterCommand.Delete(Name, Precondition.IfMatch(6)), current), ErrorCodes.VersionMismatch);
    }

    [Fact]
    public void IfMatchOnMissingCounterIsVersionMismatchAndCreatesNothing()
    {
        AssertFailed(Apply(CounterCommand.Increment(Name, 1, Precondition.IfMatch(0)), null), ErrorCodes.VersionMismatch);
        AssertFailed(Apply(CounterCommand.Put(Name, Fields(value: 1), Precondition.IfMatch(1)), null), ErrorCodes.VersionMismatch);
        AssertFailed(Apply(CounterCommand.Increment(Name, 1, new Precondition(PreconditionKind.IfMatchAny)), null), ErrorCodes.VersionMismatch);
    }

    [Fact]
    public void IfMatchAnyOnExistingCounterApplies() =>
        Assert.Equal(4, Apply(CounterCommand.Decrement(Name, 1, new Precondition(PreconditionKind.IfMatchAny)), At(5)).Counter?.Value);

    [Fact]
    public void IfNoneMatchAnyCreatesWhenMissing()
    {
        var result = Apply(CounterCommand.Put(Name, Fields(value: 3), new Precondition(PreconditionKind.IfNoneMatchAny)), null);
        Assert.Equal(CommandStatus.Created, result.Status);
        Assert.Equal(3, result.Counter?.Value);
    }

    [Fact]
    public void IfNoneMatchAnyOnExistingCounterIsCounterExists() =>
        AssertFailed(Apply(CounterCommand.Put(Name, Fields(value: 3), new Precondition(PreconditionKind.IfNoneMatchAny)), At(5)),
            ErrorCodes.CounterExists);

    [Fact]
    public void PreconditionIsCheckedBeforeTheBounds() =>
        AssertFailed(Apply(CounterCommand.Increment(Name, 1, Precondition.IfMatch(1)), At(10, max: 10, version: 2)), ErrorCodes.VersionMismatch);

    // ---- put ----

    [Fact]
    public void PutEmptyCreatesAtZeroWithoutBounds()
    {
        var result = Apply(CounterCommand.Put(Name, default), null);
        Assert.Equal(CommandStatus.Created, result.Status);
        Assert.True(result.Changed);
        Assert.Equal(new Counter(Name, 0, 0, null, null, 1, Now, Now), result.Counter);
    }

    [Fact]
    public void PutCreateWithoutValueStartsAtInitial() =>
        Assert.Equal(new Counter(Name, 5, 5, null, null, 1, Now, Now), Apply(CounterCommand.Put(Name, Fields(initial: 5)), null).Counter);

    [Fact]
    public void PutCreateWithEveryField()
    {
        var fields = new CounterFields(Optional<long>.Of(3), Optional<long>.Of(1), Optional<long?>.Of(-2), Optional<long?>.Of(9));
        Assert.Equal(new Counter(Name, 3, 1, -2, 9, 1, Now, Now), Apply(CounterCommand.Put(Name, fields), null).Counter);
    }

    [Fact]
    public void PutUpdateKeepsOmittedFieldsBumpsVersionAndKeepsCreatedAt()
    {
        var result = Apply(CounterCommand.Put(Name, Fields(value: 4)), At(8, min: 1, max: 9, initial: 2, version: 7));
        Assert.Equal(CommandStatus.Ok, result.Status);
        Assert.True(result.Changed);
        Assert.Equal(new Counter(Name, 4, 2, 1, 9, 8, Earlier, Now), result.Counter);
    }

    [Fact]
    public void PutUpdateWithoutValueKeepsTheValueNotTheInitial() =>
        Assert.Equal(8, Apply(CounterCommand.Put(Name, Fields(initial: 3)), At(8, initial: 2)).Counter?.Value);

    [Fact]
    public void PutMaxNullRemovesTheBoundAndKeepsTheOther()
    {
        var fields = new CounterFields(default, default, default, Optional<long?>.Of(null));
        var result = Apply(CounterCommand.Put(Name, fields), At(8, min: 1, max: 9, initial: 1));
        Assert.Equal(new Counter(Name, 8, 1, 1, null, 8, Earlier, Now), result.Counter);
    }

    [Fact]
    public void PutMinNullRemovesTheLowerBound()
    {
        var fields = new CounterFields(Optional<long>.Of(-100), default, Optional<long?>.Of(null), default);
        var result = Apply(CounterCommand.Put(Name, fields), At(8, min: 1, max: 9));
        Assert.Equal(new Counter(Name, -100, 0, null, 9, 8, Earlier, Now), result.Counter);
    }

    [Fact]
    public void PutValueZeroIsThePlainReset() =>
        Assert.Equal(0, Apply(CounterCommand.Put(Name, Fields(value: 0)), At(41, initial: 10)).Counter?.Value);

    [Fact]
    public void PutMinGreaterThanMaxIsInvalidBounds()
    {
        var fields = new CounterFields(default, default, Optional<long?>.Of(5), Optional<long?>.Of(4));
        AssertFailed(Apply(CounterCommand.Put(Name, fields), null), ErrorCodes.InvalidBounds);
    }

    [Fact]
    public void PutMinAboveTheKeptMaxIsInvalidBounds()
    {
        var fields = new CounterFields(default, default, Optional<long?>.Of(20), default);
        AssertFailed(Apply(CounterCommand.Put(Name, fields), At(5, max: 10)), ErrorCodes.InvalidBounds);
    }

    [Fact]
    public void PutMinEqualToMaxIsAllowed()
    {
        var fields = new CounterFields(Optional<long>.Of(4), Optional<long>.Of(4), Optional<long?>.Of(4), Optional<long?>.Of(4));
        Assert.Equal(new Counter(Name, 4, 4, 4, 4, 1, Now, Now), Apply(CounterCommand.Put(Name, fields), null).Counter);
    }

    [Fact]
    public void PutBoundsAtThe64BitLimitsAreAllowed()
    {
        var fields = new CounterFields(Optional<long>.Of(long.MaxValue), Optional<long>.Of(long.MinValue),
            Optional<long?>.Of(long.MinValue), Optional<long?>.Of(long.MaxValue));
        var counter = Apply(CounterCommand.Put(Name, fields), null).Counter!;
        Assert.Equal((long.MaxValue, long.MinValue, long.MinValue, long.MaxValue), (counter.Value, counter.Initial, counter.Min!.Value, counter.Max!.Value));
    }

    [Fact]
    public void PutValueOutsideTheBoundsIsInvalidValue()
    {
        var fields = new CounterFields(Optional<long>.Of(11), default, Optional<long?>.Of(0), Optional<long?>.Of(10));
        AssertFailed(Apply(CounterCommand.Put(Name, fields), null), ErrorCodes.InvalidValue);
    }

    [Fact]
    public void PutBoundsThatExcludeTheCurrentValueIsInvalidValue()
    {
        var fields = new CounterFields(default, default, default, Optional<long?>.Of(10));
        AssertFailed(Apply(CounterCommand.Put(Name, fields), At(50)), ErrorCodes.InvalidValue);
    }

    [Fact]
    public void PutInitialOutsideTheBoundsIsInvalidValue()
    {
        // reset must always land inside the bounds, so initial must be inside them too.
        var fields = new CounterFields(Optional<long>.Of(5), Optional<long>.Of(0), Optional<long?>.Of(1), Optional<long?>.Of(10));
        AssertFailed(Apply(CounterCommand.Put(Name, fields), null), ErrorCodes.InvalidValue);
        AssertFailed(Apply(CounterCommand.Put(Name, new CounterFields(default, default, Optional<long?>.Of(1), default)), At(5, initial: 0)),
            ErrorCodes.InvalidValue);
    }

    // ---- reset ----

    [Fact]
    public void ResetReturnsToInitialAndBumpsVersion()
    {
        var result = Apply(CounterCommand.Reset(Name), At(9, min: -10, max: 10, initial: -3, version: 7));
        Assert.Equal(CommandStatus.Ok, result.Status);
        Assert.True(result.Changed);
        Assert.Equal(new Counter(Name, -3, -3, -10, 10, 8, Earlier, Now), result.Counter);
    }

    [Fact]
    public void ResetAtInitialStillCountsAsAChange() =>
        Assert.Equal(8, Apply(CounterCommand.Reset(Name), At(0, version: 7)).Counter?.Version);

    [Fact]
    public void ResetMissingIsCounterNotFound() =>
        AssertFailed(Apply(CounterCommand.Reset(Name), null), ErrorCodes.CounterNotFound);

    // ---- delete ----

    [Fact]
    public void DeleteAnswersTheStateBefore()
    {
        var current = At(9);
        var result = Apply(CounterCommand.Delete(Name), current);
        Assert.Equal(CommandStatus.Deleted, result.Status);
        Assert.True(result.Changed);
        Assert.Equal(current, result.Counter);
    }

    [Fact]
    public void DeleteMissingIsCounterNotFound() =>
        AssertFailed(Apply(CounterCommand.Delete(Name), null), ErrorCodes.CounterNotFound);

    [Fact]
    public void DeleteAtTheMatchingVersionApplies() =>
        Assert.Equal(CommandStatus.Deleted, Apply(CounterCommand.Delete(Name, Precondition.IfMatch(7)), At(9, version: 7)).Status);
}
