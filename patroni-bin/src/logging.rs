//! Where the agent's log goes: stderr, through a writer that cannot fail.
//!
//! A broken or closed stderr (a log pipe whose reader died, `2>&-`) must never stop an HA agent:
//! a failed write is dropped, not turned into a panic.

use std::io::Write;

/// Stderr that swallows write errors.
#[derive(Debug, Clone, Copy, Default)]
pub struct QuietStderr;

impl Write for QuietStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}
