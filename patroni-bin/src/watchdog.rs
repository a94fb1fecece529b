//! The `watchdog` section: which fencing the agent runs, and the Linux watchdog device.
//!
//! `mode: automatic` (Patroni's default) runs the fence process (see [`crate::fence`]) and, when
//! the device exists, also keeps `/dev/watchdog` alive each loop while the node leads; `required`
//! additionally refuses to lead while the fence process does not run; `off` runs neither.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::WatchdogSection;

/// The fencing mode, as Patroni spells it (`off`/`false`, `automatic`/`true`, `required`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No fence, no device.
    Off,
    /// The fence process, and the device when present.
    Automatic,
    /// As `automatic`, and never lead without a running fence.
    Required,
}

/// The section's settings, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The mode.
    pub mode: Mode,
    /// The watchdog device.
    pub device: PathBuf,
    /// How long before the lease ends the database is stopped; `None` means `ttl / 2`
    /// (Patroni's `-1`).
    pub safety_margin: Option<Duration>,
}

impl Settings {
    /// Reads the section; an unknown mode or a negative margin other than -1 is an error.
    pub fn from_section(s: &WatchdogSection) -> Result<Settings, String> {
        let mode = match s.mode.as_deref().map(str::trim) {
            None | Some("automatic") | Some("true") | Some("on") => Mode::Automatic,
            Some("off") | Some("false") => Mode::Off,
            Some("required") => Mode::Required,
            Some(other) => {
                return Err(format!(
                    "watchdog.mode {other:?}: expected off, automatic or required"
                ))
            }
        };
        let safety_margin = match s.safety_margin {
            None => Some(Duration::from_secs(5)),
            Some(-1) => None,
            Some(m) if m >= 0 => Some(Duration::from_secs(m as u64)),
            Some(m) => return Err(format!("watchdog.safety_margin {m}: expected -1 or >= 0")),
        };
        Ok(Settings {
            mode,
            device: PathBuf::from(s.device.as_deref().unwrap_or("/dev/watchdog")),
            safety_margin,
        })
    }
}

/// An open watchdog device: every keep-alive postpones the machine's reset.
#[derive(Debug)]
pub struct Device {
    path: PathBuf,
    file: Option<File>,
}

impl Device {
    /// The device at `path`, not opened yet (opening starts the hardware timer).
    pub fn new(path: &Path) -> Device {
        Device {
            path: path.to_path_buf(),
            file: None,
        }
    }

    /// Whether the device exists on this machine.
    pub fn present(&self) -> bool {
        self.path.exists()
    }

    /// Opens the device if needed and pings it.
    pub fn keep_alive(&mut self) -> std::io::Result<()> {
        if self.file.is_none() {
            self.file = Some(OpenOptions::new().write(true).open(&self.path)?);
        }
        let f = self.file.as_mut().expect("just opened");
        f.write_all(b"\0")?;
        f.flush()
    }

    /// Stops the timer with the magic close (`V`), where the driver allows it.
    pub fn disable(&mut self) {
        if let Some(mut f) = self.file.take() {
            let _ = f.write_all(b"V");
            let _ = f.flush();
        }
    }

    /// Whether the device is open (the timer runs); what the tests check after arming it.
    #[cfg(test)]
    pub fn is_active(&self) -> bool {
        self.file.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(mode: Option<&str>, margin: Option<i64>) -> WatchdogSection {
        WatchdogSection {
            mode: mode.map(String::from),
            device: None,
            safety_margin: margin,
        }
    }

    #[test]
    fn modes_as_patroni_spells_them() {
        let m = |s: Option<&str>| Settings::from_section(&section(s, None)).map(|s| s.mode);
        assert_eq!(m(None), Ok(Mode::Automatic));
        assert_eq!(m(Some("false")), Ok(Mode::Off));
        assert_eq!(m(Some("required")), Ok(Mode::Required));
        assert!(m(Some("sometimes")).is_err());
        assert!(Settings::from_section(&section(None, Some(-3))).is_err());
    }

    #[test]
    fn a_device_is_pinged_and_closed_magically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("watchdog");
        std::fs::write(&path, b"").unwrap();
        let mut d = Device::new(&path);
        assert!(d.present() && !d.is_active());
        d.keep_alive().unwrap();
        d.keep_alive().unwrap();
        assert!(d.is_active());
        d.disable();
        assert_eq!(std::fs::read(&path).unwrap(), b"\0\0V");
    }
}
