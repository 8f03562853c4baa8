//! The payment aggregate (owned by the pay component).
