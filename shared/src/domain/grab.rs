//! The grab aggregate (owned by the grab component): ride request lifecycle and the pay circuit breaker.
