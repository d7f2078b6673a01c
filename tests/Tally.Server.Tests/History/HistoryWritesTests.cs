using Tally.Server.Counters;
using Tally.Server.History;

namespace Tally.Server.Tests.History;

/// <summary>The one aggregation of a commit's changes into bucket deltas, and the bucket arithmetic, on their own.</summary>
public class HistoryWritesTests
{
    // 2023-11-14T22:13:20.000Z: 22:13 is the minute, 22:00 the hour, 2023-11-14 the day.
    private const long Now = 1_700_000_000_000;
    private const long Minute = 1_699_999_980_000;
    private const long Hour = 1_699_999_200_000;
    private const long Day = 1_699_920_000_000;

    private static CounterChange Change(string name, ChangeKind kind, long amount, long after) =>
        new(name, kind, amount, new Counter(name, after, 0, null, null, 1, Now, Now));

    private static CounterChange Deletion(string name) => new(name, ChangeKind.Delete, 0, null);

    [Fact]
    public void BucketStartsAreTheUtcFloorAlsoBefore1970()
    {
        Assert.Equal(Minute, HistoryIntervals.StartOf(HistoryInterval.Minute, Now));
        Assert.Equal(Hour, HistoryIntervals.StartOf(HistoryInterval.Hour, Now));
        Assert.Equal(Day, HistoryIntervals.StartOf(HistoryInterval.Day, Now));
        Assert.Equal(new DateTime(2023, 11, 14, 0, 0, 0, DateTimeKind.Utc), DateTime.UnixEpoch.AddMilliseconds(Day));
        Assert.Equal(Day, HistoryIntervals.StartOf(HistoryInterval.Day, Day));
        Assert.Equal(Day - HistoryIntervals.DayMs, HistoryIntervals.StartOf(HistoryInterval.Day, Day - 1));
        Assert.Equal(-60_000, HistoryIntervals.StartOf(HistoryInterval.Minute, -1));
        Assert.Equal(-60_000, HistoryIntervals.StartOf(HistoryInterval.Minute, -60_000));
        Assert.Equal(0, HistoryIntervals.StartOf(HistoryInterval.Minute, 59_999));
    }

    [Fact]
    public void ACommitsChangesOfOneCounterMakeOneBucketPerInterval()
    {
        var writes = new HistoryWrites();
        writes.Record([
            Change("a", ChangeKind.Increment, 5, 5),
            Change("b", ChangeKind.Set, 0, 7),
            Change("a", ChangeKind.Decrement, 2, 3),
            Change("a", ChangeKind.Set, 0, 100),
            Change("a", ChangeKind.Increment, 1, 101),
        ], Now, record: true);

        var a = writes.Find("a")!;
        Assert.False(a.ClearsStored);
        Assert.Equal([
            new HistoryDelta(HistoryInterval.Minute, new HistoryBucket(Minute, 6, 2, 1, 101)),
            new HistoryDelta(HistoryInterval.Hour, new HistoryBucket(Hour, 6, 2, 1, 101)),
            new HistoryDelta(HistoryInterval.Day, new HistoryBucket(Day, 6, 2, 1, 101)),
        ], a.Deltas);
        Assert.Equal(new HistoryBucket(Minute, 0, 0, 1, 7), writes.Find("b")!.Deltas[0].Bucket);
        Assert.Equal(6, writes.DeltaCount);
    }

    [Fact]
    public void ADeletionDropsTheHistoryBeforeItAndWhatFollowsStartsAfresh()
    {
        var writes = new HistoryWrites();
        writes.Record([Change("a", ChangeKind.Increment, 5, 5)], Now, record: true);
        writes.Record([Change("a", ChangeKind.Increment, 1, 6), Deletion("a"), Change("a", ChangeKind.Increment, 2, 2)], Now + 1, record: true);

        var a = writes.Find("a")!;
        Assert.True(a.ClearsStored);
        Assert.Equal(new HistoryBucket(Minute, 2, 0, 0, 2), a.Deltas.Single(delta => delta.Interval == HistoryInterval.Minute).Bucket);

        writes.Record([Deletion("a")], Now + 2, record: true);
        Assert.True(writes.Find("a")!.ClearsStored);
        Assert.Empty(writes.Find("a")!.Deltas);
    }

    [Fact]
    public void CommitsAddUpPerBucketAndANewMinuteIsANewMinuteBucket()
    {
        var writes = new HistoryWrites();
        writes.Record([Change("a", ChangeKind.Increment, 5, 5)], Now, record: true);
        writes.Record([Change("a", ChangeKind.Decrement, 1, 4)], Now + 1000, record: true);
        writes.Record([Change("a", ChangeKind.Increment, 3, 7)], Now + 60_000, record: true);

        var deltas = writes.Find("a")!.Deltas;
        Assert.Equal([new HistoryBucket(Minute, 5, 1, 0, 4), new HistoryBucket(Minute + 60_000, 3, 0, 0, 7)],
            deltas.Where(delta => delta.Interval == HistoryInterval.Minute).Select(delta => delta.Bucket));
        Assert.Equal(new HistoryBucket(Hour, 8, 1, 0, 7), deltas.Single(delta => delta.Interval == HistoryInterval.Hour).Bucket);
    }

    [Fact]
    public void SumsSaturateAtTheLargest64BitValueInsteadOfOverflowing()
    {
        var writes = new HistoryWrites();
        writes.Record([
            Change("a", ChangeKind.Increment, long.MaxValue, long.MaxValue),
            Change("a", ChangeKind.Decrement, long.MaxValue, 0),
            Change("a", ChangeKind.Increment, long.MaxValue, long.MaxValue),
            Change("a", ChangeKind.Decrement, 1, long.MaxValue - 1),
        ], Now, record: true);
        writes.Record([Change("a", ChangeKind.Increment, 1, long.MaxValue)], Now, record: true);

        Assert.Equal(new HistoryBucket(Minute, long.MaxValue, long.MaxValue, 0, long.MaxValue), writes.Find("a")!.Deltas[0].Bucket);
        Assert.Equal(long.MaxValue, HistoryBucket.SaturatingAdd(long.MaxValue - 1, 2));
        Assert.Equal(long.MaxValue, HistoryBucket.SaturatingAdd(long.MaxValue, long.MaxValue));
        Assert.Equal(5, HistoryBucket.SaturatingAdd(2, 3));
    }

    [Fact]
    public void WithRecordingOffOnlyDeletionsAreKept()
    {
        var writes = new HistoryWrites();
        writes.Record([Change("a", ChangeKind.Increment, 5, 5), Change("b", ChangeKind.Increment, 1, 1), Deletion("b")], Now, record: false);

        Assert.Null(writes.Find("a"));
        Assert.True(writes.Find("b")!.ClearsStored);
        Assert.Empty(writes.Find("b")!.Deltas);
        writes.Clear();
        Assert.True(writes.IsEmpty);
    }

    [Fact]
    public void PendingWritesOverStoredBucketsGiveWhatTheStoreWillHold()
    {
        var writes = new HistoryWrites();
        writes.Record([Change("a", ChangeKind.Increment, 2, 12)], Now, record: true);
        writes.Record([Change("a", ChangeKind.Increment, 1, 13)], Now + 120_000, record: true);
        HistoryBucket[] stored = [new(Minute - 60_000, 1, 0, 0, 9), new(Minute, 10, 0, 1, 10)];

        Assert.Equal([new(Minute - 60_000, 1, 0, 0, 9), new(Minute, 12, 0, 1, 12), new(Minute + 120_000, 1, 0, 0, 13)],
            writes.Find("a")!.Over(HistoryInterval.Minute, stored, 0, long.MaxValue));
        // Only the range asked for.
        Assert.Equal([new HistoryBucket(Minute, 12, 0, 1, 12)],
            writes.Find("a")!.Over(HistoryInterval.Minute, [stored[1]], Minute, Minute + 60_000));

        writes.Record([Deletion("a"), Change("a", ChangeKind.Increment, 4, 4)], Now + 120_001, record: true);
        Assert.Equal([new HistoryBucket(Minute + 120_000, 4, 0, 0, 4)], writes.Find("a")!.Over(HistoryInterval.Minute, stored, 0, long.MaxValue));
    }

    [Fact]
    public void RetentionKeepsTheBucketHoldingNowMinusTheRetention()
    {
        var options = new HistoryOptions();
        Assert.Equal(Minute - 48 * HistoryIntervals.HourMs, options.OldestKept(HistoryInterval.Minute, Now));
        Assert.Equal(Hour - 90 * HistoryIntervals.DayMs, options.OldestKept(HistoryInterval.Hour, Now));
        Assert.Equal(Day - 5 * 366 * HistoryIntervals.DayMs, options.OldestKept(HistoryInterval.Day, Now));
    }
}

/// <summary>The retention settings' bounds, checked at start (ValidateOnStart) with a sentence naming the setting.</summary>
public class HistoryOptionsTests
{
    [Fact]
    public void TheDefaultsAreValid() => Assert.True(new HistoryOptionsValidator().Validate(null, new HistoryOptions()).Succeeded);

    [Theory]
    [InlineData(0, 90, 5, "History:MinuteRetentionHours must be from 1 to 720")]
    [InlineData(721, 90, 5, "History:MinuteRetentionHours must be from 1 to 720")]
    [InlineData(48, 0, 5, "History:HourRetentionDays must be from 1 to 1830")]
    [InlineData(48, 90, 101, "History:DayRetentionYears must be from 1 to 100")]
    public void ARetentionOutOfItsRangeIsNamed(int minuteHours, int hourDays, int dayYears, string problem)
    {
        var result = new HistoryOptionsValidator().Validate(null,
            new HistoryOptions { MinuteRetentionHours = minuteHours, HourRetentionDays = hourDays, DayRetentionYears = dayYears });
        Assert.True(result.Failed);
        Assert.Contains(problem, result.FailureMessage, StringComparison.Ordinal);
    }
}
