using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;

namespace Tally.Server.Observability;

/// <summary>
/// Collects System.Diagnostics.Metrics measurements and renders them in the Prometheus text
/// exposition format (version 0.0.4). Small on purpose: counters, gauges and histograms, with
/// only the tags each instrument is known to carry with bounded values.
/// </summary>
internal sealed class PrometheusExporter : IDisposable
{
    private static readonly double[] SecondsBuckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
    private static readonly double[] BatchBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096];

    // The tags exported per meter: anything else (client addresses, counter names) is dropped.
    private static readonly Dictionary<string, string[]> AllowedTags = new()
    {
        [TallyMetrics.MeterName] = ["op", "outcome", "type"],
        ["Microsoft.AspNetCore.Hosting"] = ["http.request.method", "http.route", "http.response.status_code"],
        ["Microsoft.AspNetCore.RateLimiting"] = ["aspnetcore.rate_limiting.result"],
    };

    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<Instrument, InstrumentSeries> _instruments = new();

    /// <param name="meterFactory">Only this application's meters are exported, not those of another host in the same process.</param>
    public PrometheusExporter(IMeterFactory meterFactory)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (ReferenceEquals(instrument.Meter.Scope, meterFactory) && AllowedTags.TryGetValue(instrument.Meter.Name, out var tags))
            {
                var series = _instruments.GetOrAdd(instrument, i => new InstrumentSeries(i, tags, BucketsFor(i)));
                listener.EnableMeasurementEvents(instrument, series);
            }
        };
        _listener.SetMeasurementEventCallback<long>((_, value, tags, state) => ((InstrumentSeries)state!).Record(value, tags));
        _listener.SetMeasurementEventCallback<int>((_, value, tags, state) => ((InstrumentSeries)state!).Record(value, tags));
        _listener.SetMeasurementEventCallback<double>((_, value, tags, state) => ((InstrumentSeries)state!).Record(value, tags));
        _listener.Start();
    }

    public string Render()
    {
        _listener.RecordObservableInstruments();
        var text = new StringBuilder(4096);
        foreach (var series in _instruments.Values.OrderBy(s => s.MetricName, StringComparer.Ordinal))
        {
            series.Write(text);
        }
        return text.ToString();
    }

    public void Dispose() => _listener.Dispose();

    private static double[]? BucketsFor(Instrument instrument) =>
        instrument.GetType().IsGenericType && instrument.GetType().GetGenericTypeDefinition() == typeof(Histogram<>)
            ? instrument.Unit == "s" ? SecondsBuckets : BatchBuckets
            : null;

    /// <summary>One instrument and its series, one per distinct set of allowed tag values.</summary>
    private sealed class InstrumentSeries(Instrument instrument, string[] allowedTags, double[]? buckets)
    {
        private readonly ConcurrentDictionary<TagValues, Series> _series = new();
        private readonly string _kind = buckets is not null ? "histogram"
            : instrument.GetType().Name.Contains("Gauge", StringComparison.Ordinal) || instrument.GetType().Name.Contains("UpDown", StringComparison.Ordinal) ? "gauge"
            : "counter";

        /// <summary>In the 0.0.4 text format a counter's family is named with its <c>_total</c> suffix.</summary>
        public string MetricName => _kind == "counter" ? PrometheusName(instrument) + "_total" : PrometheusName(instrument);

        // Observable instruments report their current total or level at each collection; the others report deltas.
        private readonly bool _reportsTotals = instrument.IsObservable;


        public void Record(double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var key = TagValues.From(allowedTags, tags);
            // TryGetValue first: GetOrAdd's factory captures the buckets, one delegate allocated per measurement.
            if (!_series.TryGetValue(key, out var series))
            {
                series = _series.GetOrAdd(key, static (_, buckets) => new Series(buckets), buckets);
            }
            if (_reportsTotals)
            {
                series.Set(value);
            }
            else
            {
                series.Add(value);
            }
        }

        public void Write(StringBuilder text)
        {
            if (_series.IsEmpty)
            {
                return;
            }
            text.Append("# HELP ").Append(MetricName).Append(' ').Append(Escape(instrument.Description ?? instrument.Name, help: true)).Append('\n');
            text.Append("# TYPE ").Append(MetricName).Append(' ').Append(_kind).Append('\n');
            foreach (var (tags, series) in _series.OrderBy(s => s.Key.ToString(allowedTags), StringComparer.Ordinal))
            {
                series.Write(text, MetricName, tags.ToString(allowedTags));
            }
        }
    }

    /// <summary>A counter's or gauge's value, or a histogram's buckets, updated without locks.</summary>
    private sealed class Series(double[]? buckets)
    {
        private readonly long[]? _bucketCounts = buckets is null ? null : new long[buckets.Length + 1];
        private double _sum;

        public void Add(double value)
        {
            if (_bucketCounts is not null)
            {
                var i = Array.BinarySearch(buckets!, value);
                Interlocked.Increment(ref _bucketCounts[i >= 0 ? i : ~i]);
            }
            double seen, next;
            do
            {
                seen = Volatile.Read(ref _sum);
                next = seen + value;
            }
            while (Interlocked.CompareExchange(ref _sum, next, seen) != seen);
        }

        public void Set(double value) => Volatile.Write(ref _sum, value);

        public void Write(StringBuilder text, string name, string labels)
        {
            if (_bucketCounts is null)
            {
                text.Append(name).Append(Braces(labels)).Append(' ').Append(Number(Volatile.Read(ref _sum))).Append('\n');
                return;
            }
            long cumulative = 0;
            for (var i = 0; i < buckets!.Length; i++)
            {
                cumulative += Volatile.Read(ref _bucketCounts[i]);
                text.Append(name).Append("_bucket").Append(Braces(Join(labels, $"le=\"{Number(buckets[i])}\""))).Append(' ').Append(cumulative).Append('\n');
            }
            cumulative += Volatile.Read(ref _bucketCounts[^1]);
            text.Append(name).Append("_bucket").Append(Braces(Join(labels, "le=\"+Inf\""))).Append(' ').Append(cumulative).Append('\n');
            text.Append(name).Append("_sum").Append(Braces(labels)).Append(' ').Append(Number(Volatile.Read(ref _sum))).Append('\n');
            text.Append(name).Append("_count").Append(Braces(labels)).Append(' ').Append(cumulative).Append('\n');
        }

        private static string Join(string labels, string more) => labels.Length == 0 ? more : labels + "," + more;

        private static string Braces(string labels) => labels.Length == 0 ? string.Empty : "{" + labels + "}";
    }

    /// <summary>Up to four tag values in the order of the allowed tag names; no allocation per measurement.</summary>
    private readonly record struct TagValues(object? V0, object? V1, object? V2, object? V3)
    {
        public static TagValues From(string[] allowed, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            object? v0 = null, v1 = null, v2 = null, v3 = null;
            foreach (var (key, value) in tags)
            {
                var index = Array.IndexOf(allowed, key);
                switch (index)
                {
                    case 0: v0 = value; break;
                    case 1: v1 = value; break;
                    case 2: v2 = value; break;
                    case 3: v3 = value; break;
                }
            }
            return new TagValues(v0, v1, v2, v3);
        }

        public string ToString(string[] allowed)
        {
            var labels = new List<string>(4);
            object?[] values = [V0, V1, V2, V3];
            for (var i = 0; i < allowed.Length && i < 4; i++)
            {
                if (values[i] is { } value)
                {
                    labels.Add($"{allowed[i].Replace('.', '_')}=\"{Escape(Convert.ToString(value, CultureInfo.InvariantCulture) ?? string.Empty, help: false)}\"");
                }
            }
            return string.Join(',', labels);
        }
    }

    /// <summary>tally.commit.duration with unit s → tally_commit_duration_seconds.</summary>
    private static string PrometheusName(Instrument instrument)
    {
        var name = new StringBuilder(instrument.Name.Length + 8);
        foreach (var c in instrument.Name)
        {
            name.Append(char.IsAsciiLetterOrDigit(c) ? c : '_');
        }
        if (instrument.Unit == "s" && !instrument.Name.EndsWith("seconds", StringComparison.Ordinal))
        {
            name.Append("_seconds");
        }
        return name.ToString();
    }

    private static string Number(double value) =>
        double.IsPositiveInfinity(value) ? "+Inf" : value.ToString("R", CultureInfo.InvariantCulture);

    private static string Escape(string text, bool help) =>
        help ? text.Replace("\\", "\\\\").Replace("\n", "\\n") : text.Replace("\\", "\\\\").Replace("\"", "\\\"").Replace("\n", "\\n");
}
