//! Value objects shared by every aggregate: money, places and phone numbers.
//! Each is built only through `parse`/`TryFrom`, so an invalid one cannot exist.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a value was refused. `field` names the JSON field for the problem+json answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidValue {
    /// The camelCase field the value came from.
    pub field: &'static str,
    /// What is wrong with it, in words a client can act on.
    pub reason: String,
}

impl InvalidValue {
    /// An error about `field`.
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// An amount of money in whole Korean won. Positive and at most 10,000,000 KRW.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Money(i64);

impl Money {
    /// The largest fare we accept at all (pay applies its own, lower, limit).
    pub const MAX: i64 = 10_000_000;

    /// Parse a fare; fails unless 1 ..= [`Money::MAX`].
    pub fn krw(amount: i64) -> Result<Self, InvalidValue> {
        if (1..=Self::MAX).contains(&amount) {
            Ok(Self(amount))
        } else {
            Err(InvalidValue::new(
                "amount",
                format!("must be a whole number of KRW between 1 and {}", Self::MAX),
            ))
        }
    }

    /// The amount in KRW.
    pub fn as_krw(self) -> i64 {
        self.0
    }
}

impl TryFrom<i64> for Money {
    type Error = InvalidValue;
    fn try_from(v: i64) -> Result<Self, InvalidValue> {
        Self::krw(v)
    }
}

impl From<Money> for i64 {
    fn from(m: Money) -> i64 {
        m.0
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} KRW", self.0)
    }
}

/// A place on earth: WGS84 latitude/longitude and an optional human name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "GeoPointDto", into = "GeoPointDto")]
pub struct GeoPoint {
    lat: f64,
    lng: f64,
    name: Option<String>,
}

/// The wire shape of a [`GeoPoint`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoPointDto {
    /// Latitude in degrees, -90 ..= 90.
    pub lat: f64,
    /// Longitude in degrees, -180 ..= 180.
    pub lng: f64,
    /// Optional name, at most 200 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl GeoPoint {
    /// Build a point; fails on out-of-range or non-finite coordinates or an over-long name.
    pub fn new(lat: f64, lng: f64, name: Option<String>) -> Result<Self, InvalidValue> {
        if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
            return Err(InvalidValue::new("lat", "must be between -90 and 90"));
        }
        if !lng.is_finite() || !(-180.0..=180.0).contains(&lng) {
            return Err(InvalidValue::new("lng", "must be between -180 and 180"));
        }
        let name = name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
        if name.as_ref().is_some_and(|n| n.chars().count() > 200) {
            return Err(InvalidValue::new("name", "must be at most 200 characters"));
        }
        Ok(Self { lat, lng, name })
    }

    /// Latitude in degrees.
    pub fn lat(&self) -> f64 {
        self.lat
    }

    /// Longitude in degrees.
    pub fn lng(&self) -> f64 {
        self.lng
    }

    /// The optional name.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Great-circle distance in whole metres (haversine, mean earth radius).
    pub fn distance_meters(&self, other: &GeoPoint) -> u64 {
        const EARTH_RADIUS_M: f64 = 6_371_008.8;
        let (lat1, lat2) = (self.lat.to_radians(), other.lat.to_radians());
        let dlat = lat2 - lat1;
        let dlng = (other.lng - self.lng).to_radians();
        let a = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlng / 2.0).sin().powi(2);
        let c = 2.0 * a.sqrt().atan2((1.0 - a).sqrt());
        (EARTH_RADIUS_M * c).round() as u64
    }
}

impl TryFrom<GeoPointDto> for GeoPoint {
    type Error = InvalidValue;
    fn try_from(d: GeoPointDto) -> Result<Self, InvalidValue> {
        Self::new(d.lat, d.lng, d.name)
    }
}

impl From<GeoPoint> for GeoPointDto {
    fn from(p: GeoPoint) -> Self {
        Self {
            lat: p.lat,
            lng: p.lng,
            name: p.name,
        }
    }
}

/// A rider's phone number, normalised to digits with Korean-style dashes kept as given.
/// Accepts `010-1234-5678`, `01012345678`, `+82-10-1234-5678`: 9–15 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Parse a phone number; fails on letters, too few or too many digits.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let s = s.trim();
        let body = s.strip_prefix('+').unwrap_or(s);
        let digits = body.bytes().filter(u8::is_ascii_digit).count();
        let only_allowed = body
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'-' || b == b' ');
        if !only_allowed || !(9..=15).contains(&digits) || body.starts_with('-') {
            return Err(InvalidValue::new(
                "phoneNumber",
                "must be a phone number like 010-1234-5678 (9-15 digits)",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The number as given (trimmed).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether both name the same line: `010-1234-5678` is `01012345678`.
    pub fn same_number(&self, other: &PhoneNumber) -> bool {
        let digits = |p: &PhoneNumber| p.0.bytes().filter(u8::is_ascii_digit).collect::<Vec<_>>();
        digits(self) == digits(other)
    }

    /// The number for logs: every digit but the first three and last four masked
    /// (`010-****-5678`). Phone numbers never reach an info log unmasked.
    pub fn masked(&self) -> String {
        let total = self.0.bytes().filter(u8::is_ascii_digit).count();
        let mut seen = 0;
        self.0
            .chars()
            .map(|c| {
                if !c.is_ascii_digit() {
                    return c;
                }
                seen += 1;
                if seen <= 3 || seen > total.saturating_sub(4) {
                    c
                } else {
                    '*'
                }
            })
            .collect()
    }
}

impl TryFrom<String> for PhoneNumber {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, InvalidValue> {
        Self::parse(&s)
    }
}

impl From<PhoneNumber> for String {
    fn from(p: PhoneNumber) -> String {
        p.0
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_masked_phone_number_keeps_only_its_prefix_and_last_four_digits() {
        let p = PhoneNumber::parse("010-1234-5678").unwrap();
        assert_eq!(p.masked(), "010-****-5678");
        assert_eq!(
            PhoneNumber::parse("01012345678").unwrap().masked(),
            "010****5678"
        );
    }

    #[test]
    fn dashes_do_not_make_a_different_number() {
        let a = PhoneNumber::parse("010-1234-5678").unwrap();
        assert!(a.same_number(&PhoneNumber::parse("01012345678").unwrap()));
        assert!(!a.same_number(&PhoneNumber::parse("010-1234-5679").unwrap()));
    }

    #[test]
    fn money_must_be_positive_and_bounded() {
        assert!(Money::krw(15_000).is_ok());
        assert!(Money::krw(0).is_err());
        assert!(Money::krw(-1).is_err());
        assert!(Money::krw(Money::MAX + 1).is_err());
    }

    #[test]
    fn points_reject_out_of_range_coordinates() {
        assert!(GeoPoint::new(37.55, 126.97, Some("Seoul Station".into())).is_ok());
        assert_eq!(GeoPoint::new(91.0, 0.0, None).unwrap_err().field, "lat");
        assert_eq!(GeoPoint::new(0.0, 181.0, None).unwrap_err().field, "lng");
        assert!(GeoPoint::new(f64::NAN, 0.0, None).is_err());
    }

    #[test]
    fn seoul_station_to_city_hall_is_about_a_kilometre() {
        let station = GeoPoint::new(37.5547, 126.9707, None).unwrap();
        let city_hall = GeoPoint::new(37.5663, 126.9779, None).unwrap();
        let d = station.distance_meters(&city_hall);
        assert!((1_300..1_500).contains(&d), "got {d}");
        assert_eq!(station.distance_meters(&station), 0);
    }

    #[test]
    fn phone_numbers_are_digits_and_dashes() {
        assert!(PhoneNumber::parse("010-1234-5678").is_ok());
        assert!(PhoneNumber::parse("+82-10-1234-5678").is_ok());
        assert!(PhoneNumber::parse("call me").is_err());
        assert!(PhoneNumber::parse("123").is_err());
    }

    #[test]
    fn geo_point_json_refuses_unknown_fields() {
        let bad = serde_json::from_str::<GeoPoint>(r#"{"lat":1,"lng":2,"alt":3}"#);
        assert!(bad.is_err());
        let ok: GeoPoint = serde_json::from_str(r#"{"lat":1,"lng":2}"#).unwrap();
        assert_eq!(ok.name(), None);
    }
}
