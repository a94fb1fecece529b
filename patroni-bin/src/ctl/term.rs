//! The operator's terminal: output, and Python `click`'s prompts, asked only when stdin is a
//! terminal; a script that leaves out an option gets a one-line error naming it instead.

use std::io::{BufRead, IsTerminal, Write};

use super::CtlError;

/// Where commands print and read answers.
pub struct Term {
    interactive: bool,
    input: Box<dyn BufRead>,
    out: Box<dyn Write>,
}

impl Term {
    /// Standard input and output; prompts only when stdin is a terminal.
    pub fn stdio() -> Term {
        Term {
            interactive: std::io::stdin().is_terminal(),
            input: Box::new(std::io::BufReader::new(std::io::stdin())),
            out: Box::new(std::io::stdout()),
        }
    }

    /// A scripted terminal (tests): `interactive` says whether prompts may be asked.
    pub fn scripted(interactive: bool, input: &str, out: Box<dyn Write>) -> Term {
        Term {
            interactive,
            input: Box::new(std::io::Cursor::new(input.as_bytes().to_vec())),
            out,
        }
    }

    /// Whether prompts may be asked.
    pub fn interactive(&self) -> bool {
        self.interactive
    }

    /// Writes text as it is; a closed pipe (`| head`) ends the program quietly.
    pub fn write(&mut self, text: &str) {
        let r = self
            .out
            .write_all(text.as_bytes())
            .and_then(|_| self.out.flush());
        if let Err(e) = r {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }

    /// Writes one line.
    pub fn say(&mut self, line: impl std::fmt::Display) {
        self.write(&format!("{line}\n"));
    }

    /// Clears the screen (for `-W`), only on a terminal, as `click.clear` does.
    pub fn clear(&mut self) {
        if std::io::stdout().is_terminal() {
            self.write("\x1b[2J\x1b[1;1H");
        }
    }

    fn read_line(&mut self) -> Result<String, CtlError> {
        let mut line = String::new();
        let n = self
            .input
            .read_line(&mut line)
            .map_err(|e| CtlError::Failed(format!("reading stdin: {e}")))?;
        if n == 0 {
            self.write("\n");
            return Err(CtlError::Failed("Aborted!".into()));
        }
        Ok(line.trim_end_matches(['\n', '\r']).to_string())
    }

    fn refuse(option: &str, question: &str) -> CtlError {
        let or_force = if option == "--force" {
            ""
        } else {
            " (or --force)"
        };
        CtlError::Failed(format!(
            "missing {option}{or_force}: stdin is not a terminal, so patronictl cannot ask \"{}\"",
            question.trim().trim_end_matches([':', '?']).trim()
        ))
    }

    /// `click.prompt(text, default=…)`: `option` is what a script gives instead.
    pub fn prompt(
        &mut self,
        text: &str,
        default: Option<&str>,
        option: &str,
    ) -> Result<String, CtlError> {
        if !self.interactive {
            return Err(Self::refuse(option, text));
        }
        self.ask(text, default)
    }

    /// Asks on stdin whether or not it is a terminal: for typed confirmations (`remove`) that no
    /// option replaces.
    pub fn ask(&mut self, text: &str, default: Option<&str>) -> Result<String, CtlError> {
        loop {
            match default {
                Some(d) => self.write(&format!("{text} [{d}]: ")),
                None => self.write(&format!("{text}: ")),
            }
            let answer = self.read_line()?;
            if !answer.is_empty() {
                return Ok(answer);
            }
            if let Some(d) = default {
                return Ok(d.to_string());
            }
        }
    }

    /// `click.confirm(text)` (default no); without a terminal the answer must come from `--force`.
    pub fn confirm(&mut self, text: &str) -> Result<bool, CtlError> {
        if !self.interactive {
            return Err(Self::refuse("--force", text));
        }
        loop {
            self.write(&format!("{text} [y/N]: "));
            let answer = self.read_line()?.trim().to_lowercase();
            match answer.as_str() {
                "y" | "yes" => return Ok(true),
                "" | "n" | "no" => return Ok(false),
                _ => self.say("Error: invalid input"),
            }
        }
    }

    /// A password, without echo on a terminal (`stty -echo`); read from stdin otherwise.
    pub fn password(&mut self, text: &str) -> Result<String, CtlError> {
        let tty = self.interactive;
        let stty = |arg: &str| {
            if tty {
                let _ = std::process::Command::new("stty")
                    .arg(arg)
                    .stdin(std::process::Stdio::inherit())
                    .status();
            }
        };
        self.write(&format!("{text}: "));
        stty("-echo");
        let r = self.read_line();
        stty("echo");
        if tty {
            self.write("\n");
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_need_a_terminal() {
        let mut t = Term::scripted(false, "y\n", Box::new(std::io::sink()));
        let e = t
            .confirm("Are you sure you want to restart members node2?")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "missing --force: stdin is not a terminal, so patronictl cannot ask \"Are you sure you want to restart members node2\""
        );
        assert!(t
            .prompt("Candidate ['node2']", Some(""), "--candidate")
            .is_err());
        // A typed confirmation is read from stdin all the same.
        assert_eq!(
            t.ask("Please confirm the cluster name to remove", None)
                .unwrap(),
            "y"
        );
        assert_eq!(t.ask("again", None).unwrap_err().to_string(), "Aborted!");

        let mut t = Term::scripted(true, "maybe\nYES\n\nnode3\n", Box::new(std::io::sink()));
        assert!(t.confirm("Sure?").unwrap());
        assert_eq!(t.prompt("Candidate", Some(""), "--candidate").unwrap(), "");
        assert_eq!(
            t.prompt("Candidate", Some(""), "--candidate").unwrap(),
            "node3"
        );
    }
}
