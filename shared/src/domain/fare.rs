//! Fares, priced by the server (owned by the grab component).
//!
//! A rider asks `POST /fares/quote` for a trip; [`quote`] prices it from the [`Tariff`]
//! (Spin variables; the defaults model Seoul's mid-size taxi: 4,800 KRW for the first
//! 1.6 km, then 100 KRW per 131 m, +20 % from 22:00 to 04:00 KST) and the [`Quote`] is
//! stored with an expiry. `POST /grabs` names the quote; [`redeem`] refuses an unknown,
//! expired or another rider's quote, and the grab is charged the quoted fare, never a
//! fare the client sent. Everything here is pure: the shell passes ids and time in.

use crate::domain::payment::point_field;
use crate::domain::values::GeoPointDto;
use crate::domain::{GeoPoint, InvalidValue, Money, PhoneNumber};
use crate::ids::QuoteId;
use chrono::{DateTime, Duration, FixedOffset, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

/// The night surcharge: a local-time window `[start, end)` that may wrap midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NightSurcharge {
    /// First minute of the window (inclusive), local time.
    pub start: NaiveTime,
    /// End of the window (exclusive), local time. Equal to `start`: no night window.
    pub end: NaiveTime,
    /// Surcharge in percent of the metered fare (20 = +20 %).
    pub percent: u32,
}

impl NightSurcharge {
    /// Whether `local` (a wall-clock time) falls in the window.
    pub fn covers(&self, local: NaiveTime) -> bool {
        if self.start == self.end {
            false
        } else if self.start < self.end {
            self.start <= local && local < self.end
        } else {
            local >= self.start || local < self.end
        }
    }
}

/// How a trip is priced. Built by the shell from Spin variables (see [`Tariff::new`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tariff {
    /// The flag fall, covering the first [`Tariff::base_distance_m`].
    pub base_fare_krw: i64,
    /// Metres the base fare covers.
    pub base_distance_m: u64,
    /// What each started unit beyond the base distance adds.
    pub unit_fare_krw: i64,
    /// Metres per unit.
    pub unit_distance_m: u64,
    /// Estimated road distance as a percentage of the straight line (130 = ×1.3).
    pub road_factor_pct: u32,
    /// The night window and its surcharge.
    pub night: NightSurcharge,
    /// The tariff's local time zone (Seoul: UTC+9).
    pub zone: FixedOffset,
}

/// Why a tariff is unusable (a deployment error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid tariff: {0}")]
pub struct InvalidTariff(pub String);

impl Tariff {
    /// Seoul's mid-size taxi tariff (2023): 4,800 KRW for 1.6 km, 100 KRW per 131 m,
    /// +20 % from 22:00 to 04:00 KST; road distance estimated at 1.3× the straight line.
    pub fn seoul() -> Tariff {
        Tariff {
            base_fare_krw: 4_800,
            base_distance_m: 1_600,
            unit_fare_krw: 100,
            unit_distance_m: 131,
            road_factor_pct: 130,
            night: NightSurcharge {
                start: NaiveTime::from_hms_opt(22, 0, 0).expect("valid time"),
                end: NaiveTime::from_hms_opt(4, 0, 0).expect("valid time"),
                percent: 20,
            },
            zone: FixedOffset::east_opt(9 * 3600).expect("valid offset"),
        }
    }

    /// Check a tariff read from configuration: fares positive, unit distance positive,
    /// road factor 100–300 %, surcharge at most 100 %.
    pub fn checked(self) -> Result<Tariff, InvalidTariff> {
        let bad = |what: &str| Err(InvalidTariff(what.to_owned()));
        if self.base_fare_krw <= 0 || self.unit_fare_krw < 0 {
            return bad("fares must be positive");
        }
        if self.unit_distance_m == 0 {
            return bad("the unit distance must be positive");
        }
        if !(100..=300).contains(&self.road_factor_pct) {
            return bad("the road factor must be 100-300 %");
        }
        if self.night.percent > 100 {
            return bad("the night surcharge must be at most 100 %");
        }
        Ok(self)
    }

    /// The estimated road distance for a straight line of `straight_m` metres.
    pub fn road_meters(&self, straight_m: u64) -> u64 {
        (straight_m * u64::from(self.road_factor_pct) + 50) / 100
    }

    /// The metered fare for `road_m` metres (base fare, then every started unit), with
    /// the night surcharge when `night`, rounded to the nearest 100 KRW (half up).
    pub fn fare_krw(&self, road_m: u64, night: bool) -> i64 {
        let beyond = road_m.saturating_sub(self.base_distance_m);
        let units = beyond.div_ceil(self.unit_distance_m);
        let metered = self.base_fare_krw + self.unit_fare_krw * units as i64;
        let pct = if night {
            100 + i64::from(self.night.percent)
        } else {
            100
        };
        round_to_100(metered * pct, 100)
    }

    /// Whether `at` is in the night window, in the tariff's local time.
    pub fn is_night(&self, at: DateTime<Utc>) -> bool {
        self.night.covers(at.with_timezone(&self.zone).time())
    }
}

/// `numerator / denominator` rounded to the nearest 100 (half up); both positive.
fn round_to_100(numerator: i64, denominator: i64) -> i64 {
    let hundreds = (numerator + 50 * denominator) / (100 * denominator);
    hundreds * 100
}

/// The body of `POST /fares/quote`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuoteFareDto {
    pub starting_point: GeoPointDto,
    pub destination: GeoPointDto,
}

/// Command: price a trip.
#[derive(Debug, Clone, PartialEq)]
pub struct QuoteFare {
    pub starting_point: GeoPoint,
    pub destination: GeoPoint,
}

impl TryFrom<QuoteFareDto> for QuoteFare {
    type Error = InvalidValue;
    fn try_from(d: QuoteFareDto) -> Result<Self, InvalidValue> {
        Ok(Self {
            starting_point: GeoPoint::try_from(d.starting_point)
                .map_err(|e| InvalidValue::new(point_field("startingPoint", e.field), e.reason))?,
            destination: GeoPoint::try_from(d.destination)
                .map_err(|e| InvalidValue::new(point_field("destination", e.field), e.reason))?,
        })
    }
}

/// A priced trip, valid for one rider until `expires_at`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Quote {
    pub quote_id: QuoteId,
    pub phone_number: PhoneNumber,
    pub starting_point: GeoPoint,
    pub destination: GeoPoint,
    /// What the ride costs, in whole KRW.
    pub fare: Money,
    pub straight_line_meters: u64,
    pub road_meters: u64,
    /// Whether the night surcharge applies.
    pub night_surcharge: bool,
    pub quoted_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Price `cmd` for `rider` at `now`; the quote lives `ttl`. Fails (on `destination`) when
/// the trip is too long to price (a fare above [`Money::MAX`]).
pub fn quote(
    id: QuoteId,
    rider: PhoneNumber,
    cmd: QuoteFare,
    tariff: &Tariff,
    ttl: Duration,
    now: DateTime<Utc>,
) -> Result<Quote, InvalidValue> {
    let straight = cmd.starting_point.distance_meters(&cmd.destination);
    let road = tariff.road_meters(straight);
    let night = tariff.is_night(now);
    let fare = Money::krw(tariff.fare_krw(road, night))
        .map_err(|_| InvalidValue::new("destination", "is too far away to price a ride"))?;
    Ok(Quote {
        quote_id: id,
        phone_number: rider,
        starting_point: cmd.starting_point,
        destination: cmd.destination,
        fare,
        straight_line_meters: straight,
        road_meters: road,
        night_surcharge: night,
        quoted_at: now,
        expires_at: now + ttl,
    })
}

/// Why a quote cannot be used for a grab (422 on `quoteId`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    /// No such quote, or another rider's (not confirmed to exist).
    #[error("no such quote; ask POST /fares/quote for one")]
    Unknown,
    /// The quote's time is up.
    #[error("the quote expired at {0}; ask POST /fares/quote for a new one")]
    Expired(String),
}

/// The quote `rider` may book at `now`: it exists, is theirs, and `now < expires_at`.
/// Another rider's quote is [`QuoteError::Unknown`], as if it did not exist.
pub fn redeem<'q>(
    found: Option<&'q Quote>,
    rider: &PhoneNumber,
    now: DateTime<Utc>,
) -> Result<&'q Quote, QuoteError> {
    let q = found
        .filter(|q| q.phone_number.same_number(rider))
        .ok_or(QuoteError::Unknown)?;
    if now >= q.expires_at {
        return Err(QuoteError::Expired(q.expires_at.to_rfc3339()));
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_kst(hh: u32, mm: u32, ss: u32) -> DateTime<Utc> {
        // 2026-11-25 in Seoul is UTC+9.
        let kst = FixedOffset::east_opt(9 * 3600).unwrap();
        chrono::NaiveDate::from_ymd_opt(2026, 11, 25)
            .unwrap()
            .and_hms_opt(hh, mm, ss)
            .unwrap()
            .and_local_timezone(kst)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn rider() -> PhoneNumber {
        PhoneNumber::parse("010-1234-5678").unwrap()
    }

    fn seoul_station_to_gangnam() -> QuoteFare {
        QuoteFare {
            starting_point: GeoPoint::new(37.5547, 126.9707, None).unwrap(),
            destination: GeoPoint::new(37.4979, 127.0276, None).unwrap(),
        }
    }

    fn quote_id() -> QuoteId {
        QuoteId::parse("cccccccc-0000-4000-8000-000000000001").unwrap()
    }

    fn quoted_at(now: DateTime<Utc>) -> Quote {
        quote(
            quote_id(),
            rider(),
            seoul_station_to_gangnam(),
            &Tariff::seoul(),
            Duration::minutes(5),
            now,
        )
        .unwrap()
    }

    #[test]
    fn the_metered_fare_follows_the_distance_bands() {
        let t = Tariff::seoul();
        for (road_m, want) in [
            (0, 4_800),
            (1_600, 4_800), // the base distance is covered by the base fare
            (1_601, 4_900), // one started unit
            (1_731, 4_900), // exactly one unit
            (1_732, 5_000), // into the second
            (1_600 + 131 * 10, 5_800),
            (10_000, 11_300), // 8,400 m beyond: 64.1 → 65 units
            (30_000, 26_500), // 28,400 m beyond: 216.8 → 217 units
        ] {
            assert_eq!(t.fare_krw(road_m, false), want, "{road_m} m");
        }
    }

    #[test]
    fn the_night_window_starts_at_22_and_ends_before_4_local_time() {
        let t = Tariff::seoul();
        for (h, m, s, night) in [
            (21, 59, 59, false),
            (22, 0, 0, true),
            (23, 30, 0, true),
            (0, 0, 0, true),
            (3, 59, 59, true),
            (4, 0, 0, false),
            (12, 0, 0, false),
        ] {
            assert_eq!(
                t.is_night(at_kst(h, m, s)),
                night,
                "{h:02}:{m:02}:{s:02} KST"
            );
        }
    }

    #[test]
    fn a_window_that_does_not_wrap_midnight_and_an_empty_one_work_too() {
        let hm = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
        let day = NightSurcharge {
            start: hm(1, 0),
            end: hm(5, 0),
            percent: 10,
        };
        assert!(!day.covers(hm(0, 59)));
        assert!(day.covers(hm(1, 0)));
        assert!(!day.covers(hm(5, 0)));
        let none = NightSurcharge {
            start: hm(1, 0),
            end: hm(1, 0),
            percent: 10,
        };
        assert!(!none.covers(hm(1, 0)));
    }

    #[test]
    fn the_night_surcharge_is_rounded_to_100_krw() {
        let t = Tariff::seoul();
        for (road_m, day, night) in [
            (1_000, 4_800, 5_800), // 5,760 → 5,800
            (1_601, 4_900, 5_900), // 5,880 → 5,900
            (1_862, 5_000, 6_000), // 6,000
            (1_993, 5_100, 6_100), // 6,120 → 6,100
            (2_124, 5_200, 6_200), // 6,240 → 6,200
            (2_255, 5_300, 6_400), // 6,360 → 6,400
        ] {
            assert_eq!(t.fare_krw(road_m, false), day, "{road_m} m by day");
            assert_eq!(t.fare_krw(road_m, true), night, "{road_m} m by night");
        }
    }

    #[test]
    fn rounding_is_half_up_to_the_nearest_100() {
        assert_eq!(round_to_100(5_049, 1), 5_000);
        assert_eq!(round_to_100(5_050, 1), 5_100);
        assert_eq!(round_to_100(614_000, 100), 6_100);
        assert_eq!(round_to_100(615_000, 100), 6_200);
    }

    #[test]
    fn the_road_distance_is_the_straight_line_times_the_road_factor() {
        let t = Tariff::seoul();
        assert_eq!(t.road_meters(1_000), 1_300);
        assert_eq!(t.road_meters(0), 0);
        assert_eq!(t.road_meters(7_777), 10_110);
    }

    #[test]
    fn a_quote_prices_the_trip_and_expires_after_its_ttl() {
        let now = at_kst(14, 0, 0);
        let q = quoted_at(now);
        let straight = seoul_station_to_gangnam()
            .starting_point
            .distance_meters(&seoul_station_to_gangnam().destination);
        assert_eq!(q.straight_line_meters, straight);
        assert_eq!(q.road_meters, Tariff::seoul().road_meters(straight));
        assert_eq!(
            q.fare.as_krw(),
            Tariff::seoul().fare_krw(q.road_meters, false)
        );
        assert_eq!(q.fare.as_krw() % 100, 0);
        assert!(!q.night_surcharge);
        assert_eq!(q.expires_at, now + Duration::minutes(5));
    }

    #[test]
    fn a_quote_at_night_costs_a_fifth_more_rounded() {
        let day = quoted_at(at_kst(14, 0, 0));
        let night = quoted_at(at_kst(23, 0, 0));
        assert!(night.night_surcharge);
        assert_eq!(
            night.fare.as_krw(),
            round_to_100(day.fare.as_krw() * 120, 100)
        );
    }

    #[test]
    fn a_trip_too_long_to_price_is_refused_on_the_destination() {
        let far = QuoteFare {
            starting_point: GeoPoint::new(37.5, 127.0, None).unwrap(),
            destination: GeoPoint::new(-37.5, -53.0, None).unwrap(),
        };
        let mut t = Tariff::seoul();
        t.unit_fare_krw = 100_000;
        let err = quote(
            quote_id(),
            rider(),
            far,
            &t,
            Duration::minutes(5),
            at_kst(12, 0, 0),
        )
        .unwrap_err();
        assert_eq!(err.field, "destination");
    }

    #[test]
    fn the_rider_who_asked_may_book_a_quote_until_it_expires() {
        let now = at_kst(14, 0, 0);
        let q = quoted_at(now);
        let same_line = PhoneNumber::parse("01012345678").unwrap();
        assert_eq!(redeem(Some(&q), &same_line, now), Ok(&q));
        assert_eq!(
            redeem(Some(&q), &rider(), now + Duration::seconds(299)),
            Ok(&q)
        );
    }

    #[test]
    fn an_expired_unknown_or_foreign_quote_is_refused() {
        let now = at_kst(14, 0, 0);
        let q = quoted_at(now);
        assert!(matches!(
            redeem(Some(&q), &rider(), now + Duration::minutes(5)),
            Err(QuoteError::Expired(_))
        ));
        assert_eq!(redeem(None, &rider(), now), Err(QuoteError::Unknown));
        let other = PhoneNumber::parse("010-9999-0000").unwrap();
        assert_eq!(redeem(Some(&q), &other, now), Err(QuoteError::Unknown));
    }

    #[test]
    fn a_quote_body_with_unknown_fields_or_a_bad_point_is_refused() {
        assert!(serde_json::from_str::<QuoteFareDto>(
            r#"{"startingPoint":{"lat":1,"lng":2},"destination":{"lat":1,"lng":2},"fare":1}"#
        )
        .is_err());
        let dto: QuoteFareDto = serde_json::from_str(
            r#"{"startingPoint":{"lat":1,"lng":2},"destination":{"lat":91,"lng":2}}"#,
        )
        .unwrap();
        assert_eq!(
            QuoteFare::try_from(dto).unwrap_err().field,
            "destination.lat"
        );
    }

    #[test]
    fn tariffs_from_configuration_are_checked() {
        assert!(Tariff::seoul().checked().is_ok());
        let mut t = Tariff::seoul();
        t.unit_distance_m = 0;
        assert!(t.checked().is_err());
        let mut t = Tariff::seoul();
        t.road_factor_pct = 50;
        assert!(t.checked().is_err());
    }
}
