//! The grab-status read model (CQRS view fed only by events).
