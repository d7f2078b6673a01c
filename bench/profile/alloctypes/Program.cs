using Microsoft.Diagnostics.Tracing;

// alloctypes TRACE.nettrace [TOP]: the bytes of a dotnet-trace capture's allocation samples (GCAllocationTick, one
// per ~100 KB allocated, with the type of the object that crossed the mark), grouped by type.
if (args.Length is < 1 or > 2)
{
    Console.Error.WriteLine("usage: alloctypes TRACE.nettrace [TOP]");
    return 2;
}
var byType = new Dictionary<string, long>(StringComparer.Ordinal);
long total = 0;
double first = -1, last = 0;
using (var source = new EventPipeEventSource(args[0]))
{
    source.Clr.GCAllocationTick += sample =>
    {
        var type = sample.TypeName ?? "?";
        byType[type] = byType.GetValueOrDefault(type) + sample.AllocationAmount64;
        total += sample.AllocationAmount64;
        if (first < 0)
        {
            first = sample.TimeStampRelativeMSec;
        }
        last = sample.TimeStampRelativeMSec;
    };
    source.Process();
}
if (total == 0)
{
    Console.Error.WriteLine("no allocation samples: capture with --providers Microsoft-Windows-DotNETRuntime:0x1:5");
    return 1;
}
Console.WriteLine($"sampled {total / 1e6:F1} MB over {(last - first) / 1000:F2} s");
var top = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 25;
foreach (var (type, bytes) in byType.OrderByDescending(entry => entry.Value).Take(top))
{
    Console.WriteLine($"{100.0 * bytes / total,5:F1}%  {type}");
}
return 0;
