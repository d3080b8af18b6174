//! The caller's deadline as gRPC carries it: the `grpc-timeout` header, `<1 to 8 digits><unit>`
//! with the unit one of `H M S m u n` (hours down to nanoseconds), per the gRPC over HTTP/2
//! specification. A client sets it (tonic's `Request::set_timeout`); a server reads it here.

use std::time::Duration;

use tonic::metadata::MetadataMap;

/// The time the caller gives this call, if it said (an unreadable header reads as none).
pub fn of(metadata: &MetadataMap) -> Option<Duration> {
    parse(metadata.get("grpc-timeout")?.to_str().ok()?)
}

/// `grpc-timeout`'s value as a duration.
pub fn parse(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_reads_in_each_unit_and_a_malformed_one_reads_as_none() {
        assert_eq!(parse("1000m"), Some(Duration::from_secs(1)));
        assert_eq!(parse("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse("5u"), Some(Duration::from_micros(5)));
        for bad in ["", "m", "123456789m", "10x", "-1S", "1.5S"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
