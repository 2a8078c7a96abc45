//! Everything tapctl prints on stdout goes through here, so that a reader that stops early
//! (`tapctl status | head -1`) ends the output, not the command: a closed pipe is not an error
//! and never a panic. A run that changes AWS keeps going and keeps its state; only what it
//! would have printed is dropped.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes formatted text to stdout, unless the reader has gone.
pub fn write(args: std::fmt::Arguments<'_>) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    let written = out.write_fmt(args).and_then(|_| out.flush());
    if let Err(e) = written {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            CLOSED.store(true, Ordering::Relaxed);
        }
    }
}

/// Whether the reader of stdout has gone (a write met a closed pipe).
pub fn closed() -> bool {
    CLOSED.load(Ordering::Relaxed)
}

/// `println!` that survives a closed pipe.
#[macro_export]
macro_rules! outln {
    () => { $crate::output::write(format_args!("\n")) };
    ($($t:tt)*) => { $crate::output::write(format_args!("{}\n", format_args!($($t)*))) };
}

/// `print!` that survives a closed pipe.
#[macro_export]
macro_rules! out {
    ($($t:tt)*) => { $crate::output::write(format_args!($($t)*)) };
}

/// Writes formatted text to stderr; a closed stderr (`tapctl up 2>&1 | head`) is ignored rather
/// than a panic that would end a run mid-walk (and, in the signal task, stop signal handling).
pub fn write_err(args: std::fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|_| err.flush());
}

/// `eprintln!` that survives a closed pipe.
#[macro_export]
macro_rules! errln {
    ($($t:tt)*) => { $crate::output::write_err(format_args!("{}\n", format_args!($($t)*))) };
}

/// `eprint!` that survives a closed pipe.
#[macro_export]
macro_rules! err {
    ($($t:tt)*) => { $crate::output::write_err(format_args!($($t)*)) };
}

/// Cuts a line to `width` characters, marking the cut with `…`.
pub fn fit(line: &str, width: usize) -> String {
    if line.chars().count() <= width {
        return line.to_string();
    }
    let mut cut: String = line.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_lines_are_cut_to_the_width_with_a_mark() {
        assert_eq!(super::fit("abcdef", 4), "abc…");
        assert_eq!(super::fit("abc", 4), "abc");
        assert_eq!(super::fit("ééééé", 3).chars().count(), 3);
    }
}
