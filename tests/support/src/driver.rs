//! What the benchmark and fault-injection drivers (bench/convergence, chaos/) share:
//! `--name value` flags and timestamped progress lines on stderr.

/// `--name value` from the command line, or `default`.
pub fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

/// `--name N` from the command line, or `default`.
pub fn number(name: &str, default: usize) -> usize {
    arg(name, &default.to_string())
        .parse()
        .unwrap_or_else(|_| panic!("{name} takes a number"))
}

/// `   [hh:mm:ss] message` on stderr (UTC).
pub fn progress(message: &str) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    eprintln!(
        "   [{:02}:{:02}:{:02}] {message}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    );
}
