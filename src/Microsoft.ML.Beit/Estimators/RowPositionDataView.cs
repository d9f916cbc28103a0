using Microsoft.ML.Data;

namespace Microsoft.ML.Beit.Estimators;

/// <summary>
/// Passes a data view through unchanged, except that a <see cref="BeitInputException"/> thrown while reading a row
/// gets the row's position. The stages' mappings are stateless (a saved model recreates them with no context), so
/// only the typed transformer around them can know which row failed.
/// </summary>
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

        public Cursor(DataViewRowCursor inner) => _inner = inner;

        public override DataViewSchema Schema => _inner.Schema;

        public override long Position => _inner.Position;

        public override long Batch => _inner.Batch;

        public override bool IsColumnActive(DataViewSchema.Column column) => _inner.IsColumnActive(column);

        public override ValueGetter<DataViewRowId> GetIdGetter() => _inner.GetIdGetter();

        public override bool MoveNext() => _inner.MoveNext();

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            var getter = _inner.GetGetter<TValue>(column);
            return (ref TValue value) =>
            {
                try
                {
                    getter(ref value);
                }
                catch (BeitInputException e) when (e.Row == null)
                {
                    throw e.WithRow(_inner.Position);
                }
            };
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) _inner.Dispose();
            base.Dispose(disposing);
        }
    }
}
