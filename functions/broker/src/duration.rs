//! ISO-8601 durations as Knative writes them in `backoffDelay` and `timeout`
//! (`PT0.2S`, `PT10S`, `PT1M30S`, `P1D`, `P1W`). Years and months are refused: their
//! length depends on the calendar, and Knative has no use for them.

use std::time::Duration;

/// Why a duration did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an ISO-8601 duration like PT0.2S or PT10S: {1}")]
pub struct InvalidDuration(pub String, pub &'static str);

/// Parse `P[nW][nD][T[nH][nM][n[.f]S]]` into a [`Duration`].
pub fn parse(text: &str) -> Result<Duration, InvalidDuration> {
    let fail = |why| InvalidDuration(text.to_owned(), why);
    let rest = text
        .trim()
        .strip_prefix(['P', 'p'])
        .ok_or_else(|| fail("it must start with P"))?;
    if rest.is_empty() {
        return Err(fail("it has no components"));
    }
    let (date, time) = match rest.split_once(['T', 't']) {
        Some((_, "")) => return Err(fail("T must be followed by a time component")),
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut total = 0f64;
    for (number, unit) in components(date).map_err(fail)? {
        total += number
            * match unit {
                'W' => 7.0 * 86_400.0,
                'D' => 86_400.0,
                'Y' | 'M' => return Err(fail("years and months have no fixed length")),
                _ => return Err(fail("unknown date unit")),
            };
    }
    if let Some(time) = time {
        for (number, unit) in components(time).map_err(fail)? {
            total += number
                * match unit {
                    'H' => 3_600.0,
                    'M' => 60.0,
                    'S' => 1.0,
                    _ => return Err(fail("unknown time unit")),
                };
        }
    }
    if !total.is_finite() || total > 366.0 * 86_400.0 {
        return Err(fail("it is longer than a year"));
    }
    Ok(Duration::from_secs_f64(total))
}

/// Split `1H30M` into `[(1, 'H'), (30, 'M')]`; numbers may have a fraction (`0.2`, `0,5`).
fn components(s: &str) -> Result<Vec<(f64, char)>, &'static str> {
    let mut out = Vec::new();
    let mut number = String::new();
    for c in s.chars() {
        match c {
            '0'..='9' => number.push(c),
            '.' | ',' => number.push('.'),
            u if u.is_ascii_alphabetic() => {
                if number.is_empty() {
                    return Err("a unit has no number");
                }
                let n: f64 = number.parse().map_err(|_| "a number is malformed")?;
                out.push((n, u.to_ascii_uppercase()));
                number.clear();
            }
            _ => return Err("unexpected character"),
        }
    }
    if !number.is_empty() {
        return Err("a number has no unit");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> u128 {
        parse(s).unwrap().as_millis()
    }

    #[test]
    fn knative_style_durations_parse() {
        assert_eq!(ms("PT0.2S"), 200);
        assert_eq!(ms("PT0.5S"), 500);
        assert_eq!(ms("PT10S"), 10_000);
        assert_eq!(ms("PT1M30S"), 90_000);
        assert_eq!(ms("PT1H"), 3_600_000);
        assert_eq!(ms("P1D"), 86_400_000);
        assert_eq!(ms("P1DT1S"), 86_401_000);
        assert_eq!(ms("P1W"), 7 * 86_400_000);
        assert_eq!(ms("pt2s"), 2_000);
        assert_eq!(ms("PT0,25S"), 250);
    }

    #[test]
    fn malformed_durations_are_refused() {
        for bad in [
            "", "P", "PT", "0.2S", "PT0.2", "PTS", "P1M", "P1Y", "PT1X", "PT-1S", "PT1S2",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
