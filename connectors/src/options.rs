//! Parsing of `WITH (...)` option values shared by connectors.

use std::time::Duration;

use engine::plan::Options;

/// Fails on an option the connector does not know, naming the known ones.
pub fn reject_unknown(options: &Options, known: &[&str]) -> Result<(), String> {
    match options.keys().find(|k| !known.contains(&k.as_str())) {
        None => Ok(()),
        Some(unknown) => Err(format!("unknown option `{unknown}`; known options: {}", known.join(", "))),
    }
}

pub fn parse_bool(name: &str, value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(format!("{name} = '{value}' is not true or false")),
    }
}

/// `500ms`, `5s`, `1m`, ...
pub fn parse_duration(name: &str, value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value)
        .map_err(|e| format!("{name} = '{value}' is not a duration like '500ms' or '5s': {e}"))
}

/// A byte count: `1048576`, `512KiB`, `32MiB`, `1GiB`.
pub fn parse_bytes(name: &str, value: &str) -> Result<u64, String> {
    let value = value.trim();
    let split = value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len());
    let (digits, unit) = value.split_at(split);
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "kb" | "k" => 1 << 10,
        "mib" | "mb" | "m" => 1 << 20,
        "gib" | "gb" | "g" => 1 << 30,
        _ => return Err(format!("{name} = '{value}' is not a size like '32MiB'")),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("{name} = '{value}' is not a size like '32MiB'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(parse_bytes("m", "32MiB"), Ok(32 << 20));
        assert_eq!(parse_bytes("m", "100"), Ok(100));
        assert!(parse_bytes("m", "lots").is_err());
        assert_eq!(parse_duration("d", "500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_bool("watch", "maybe").is_err());
    }
}
