//! The pure domain core: value objects and one module per aggregate.
//! Every decision is a plain function over plain structs; the shells pass ids and time in.

pub mod allocation;
pub mod fare;
pub mod grab;
pub mod grab_status;
pub mod payment;
pub mod values;

pub use values::{GeoPoint, InvalidValue, Money, PhoneNumber};
