using System.Runtime.ExceptionServices;
using Microsoft.ML.Data;

namespace Microsoft.ML.Beit.Estimators;

/// <summary>
/// Passes a data view through unchanged, except for errors: a <see cref="BeitInputException"/> thrown while reading a
/// row gets that row's number, and one that ML.NET's parallel cursors wrapped ("Splitter/consolidator worker
/// encountered exception") is unwrapped. The stages' mappings are stateless (a saved model recreates them with no
/// context), so only the typed transformer around them can say which row failed.
/// </summary>
/// <remarks>
/// ML.NET splits cursors across worker threads, whose <c>Position</c> counts only the rows each worker saw, so the
/// row number is taken from the row id, which in-memory and text sources set to the row's index (and which survives
/// the split); the cursor position is the fallback when an id is not a plain index.
/// </remarks>
internal sealed class RowPositionDataView : IDataView
{
    private readonly IDataView _source;

    public RowPositionDataView(IDataView source) => _source = source;

    public bool CanShuffle => _source.CanShuffle;

    public DataViewSchema Schema => _source.Schema;

    public long? GetRowCount() => _source.GetRowCount();

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) =>
        new Cursor(_source.GetRowCursor(columnsNeeded, rand));

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        _source.GetRowCursorSet(columnsNeeded, n, rand).Select(c => (DataViewRowCursor)new Cursor(c)).ToArray();

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly DataViewRowCursor _inner;
        private ValueGetter<DataViewRowId>? _id;

        public Cursor(DataViewRowCursor inner) => _inner = inner;

        public override DataViewSchema Schema => _inner.Schema;

        public override long Position => _inner.Position;

        public override long Batch => _inner.Batch;

        public override bool IsColumnActive(DataViewSchema.Column column) => _inner.IsColumnActive(column);

        public override ValueGetter<DataViewRowId> GetIdGetter() => _inner.GetIdGetter();

        public override bool MoveNext()
        {
            try
            {
                return _inner.MoveNext();
            }
            catch (Exception e) when (Unwrap(e) is { } input)
            {
                throw Rethrow(input);
            }
        }

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            var getter = _inner.GetGetter<TValue>(column);
            return (ref TValue value) =>
            {
                try
                {
                    getter(ref value);
                }
                catch (Exception e) when (Unwrap(e) is { } input)
                {
                    throw Rethrow(input);
                }
            };
        }

        /// <summary>The <see cref="BeitInputException"/> behind <paramref name="e"/>, if any.</summary>
        private static BeitInputException? Unwrap(Exception e)
        {
            for (Exception? x = e; x != null; x = x.InnerException)
                if (x is BeitInputException b) return b;
            return null;
        }

        private Exception Rethrow(BeitInputException e)
        {
            if (e.Row == null && CurrentRow() is long row) return e.WithRow(row);
            ExceptionDispatchInfo.Throw(e);
            return e;
        }

        /// <summary>The failing row's number, or null when this cursor cannot tell (it has not served a row).</summary>
        private long? CurrentRow()
        {
            if (_inner.Position < 0) return null;
            try
            {
                _id ??= _inner.GetIdGetter();
                DataViewRowId id = default;
                _id(ref id);
                return id.High == 0 && id.Low <= long.MaxValue ? (long)id.Low : _inner.Position;
            }
            catch (InvalidOperationException)
            {
                return _inner.Position;
            }
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) _inner.Dispose();
            base.Dispose(disposing);
        }
    }
}
