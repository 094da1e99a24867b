//! Durations as Istio YAML writes them: `10s`, `1.5s`, `100ms`, `1h30m`. Istio reads them with
//! Go's duration syntax (a sequence of decimal numbers, each with a unit `ns`, `us`, `µs`, `ms`,
//! `s`, `m` or `h`), of which protobuf's JSON form (`1.5s`) is one case.

/// Nanoseconds in one millisecond.
const MS: i128 = 1_000_000;
/// Nanoseconds in one second.
const SECOND: i128 = 1_000 * MS;

/// Parses a duration into nanoseconds.
pub(crate) fn parse_nanos(text: &str) -> Result<i128, String> {
    let invalid =
        || format!("invalid duration {text:?}: write a number and a unit, e.g. 10s, 1.5s or 100ms");
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let (number, after) = rest.split_at(number_len);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => MS,
            "s" => SECOND,
            "m" => 60 * SECOND,
            "h" => 3_600 * SECOND,
            _ => return Err(invalid()),
        };
        total = total
            .checked_add(scaled(number, scale).ok_or_else(invalid)?)
            .ok_or_else(invalid)?;
        rest = after;
    }
    Ok(if negative { -total } else { total })
}

/// `number` (digits with at most one `.`, at least one digit) times `scale`, in nanoseconds;
/// digits below a nanosecond are dropped, as Go does.
fn scaled(number: &str, scale: i128) -> Option<i128> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return None;
    }
    let whole: i128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut value = whole.checked_mul(scale)?;
    let mut place = scale;
    for digit in fraction.bytes() {
        place /= 10;
        if place == 0 {
            break;
        }
        value += i128::from(digit - b'0') * place;
    }
    Some(value)
}

/// Checks a duration the way Istio checks most of its durations: at least 1ms, and a whole
/// number of milliseconds (Envoy's resolution).
pub(crate) fn check_duration(text: &str) -> Result<(), String> {
    let nanos = parse_nanos(text)?;
    if nanos < MS {
        return Err(format!("duration {text:?} must be at least 1ms"));
    }
    if nanos % MS != 0 {
        return Err(format!(
            "duration {text:?}: only durations to ms precision are supported"
        ));
    }
    Ok(())
}

/// [`check_duration`] for a duration where zero means "off" (a TCP idle timeout).
pub(crate) fn check_duration_or_zero(text: &str) -> Result<(), String> {
    if parse_nanos(text)? == 0 {
        return Ok(());
    }
    check_duration(text)
}

/// [`check_duration`] for a duration Envoy only takes in whole seconds (CORS `maxAge`).
pub(crate) fn check_whole_seconds(text: &str) -> Result<(), String> {
    check_duration(text)?;
    if parse_nanos(text)? % SECOND != 0 {
        return Err(format!(
            "duration {text:?} is accurate only to seconds precision"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_and_protobuf_forms() {
        assert_eq!(parse_nanos("1.5s"), Ok(1_500 * MS));
        assert_eq!(parse_nanos("100ms"), Ok(100 * MS));
        assert_eq!(parse_nanos("1h30m"), Ok(5_400 * SECOND));
        assert_eq!(parse_nanos("24h"), Ok(86_400 * SECOND));
        assert_eq!(parse_nanos(".5s"), Ok(500 * MS));
        assert_eq!(parse_nanos("0"), Ok(0));
        assert_eq!(parse_nanos("-1s"), Ok(-SECOND));
        assert_eq!(parse_nanos("1500us"), Ok(1_500_000));
        for bad in [
            "",
            "10",
            "1.5",
            "s",
            "1x",
            "1..5s",
            "1 s",
            "ten seconds",
            ".",
        ] {
            assert!(parse_nanos(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn istio_minimum_and_precision() {
        assert!(check_duration("1ms").is_ok());
        assert!(check_duration("10s").is_ok());
        assert!(check_duration("0s").is_err());
        assert!(check_duration("500us").is_err());
        assert!(check_duration("1500us").is_err());
        assert!(check_duration("-5s").is_err());
        assert!(check_duration_or_zero("0s").is_ok());
        assert!(check_whole_seconds("24h").is_ok());
        assert!(check_whole_seconds("1500ms").is_err());
    }
}
