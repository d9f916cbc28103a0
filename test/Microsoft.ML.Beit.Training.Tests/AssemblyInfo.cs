// libtorch's random generator and thread count are process-wide: seeded training runs are only reproducible when
// tests do not draw from the generator concurrently.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
