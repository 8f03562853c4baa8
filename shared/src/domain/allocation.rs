//! The taxi and allocation aggregates (owned by the allocate component).
