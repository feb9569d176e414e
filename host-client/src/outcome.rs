//! What one command produced.

use std::time::Duration;

use evidence::{Body, CommandResult, Frame, Outcome};

/// The result of [`crate::Session::command`].
#[derive(Debug, Clone)]
pub struct CommandOutcome {
    /// The line that was sent.
    pub line: String,
    /// The line as the monitor reported it in its command.start frame.
    pub started_line: String,
    /// The monitor's command number.
    pub cmd: u32,
    /// Human text between the start and result frames (frames and escapes removed).
    pub text: String,
    /// This command's frames, from command.start to command.result inclusive.
    pub frames: Vec<Frame>,
    pub result: CommandResult,
    /// Host time from sending the line to seeing the next prompt.
    pub elapsed: Duration,
}

impl CommandOutcome {
    pub fn is_ok(&self) -> bool {
        matches!(self.result.outcome, Outcome::Ok)
    }

    /// The error code (`unknown-command`, ...) when the command failed.
    pub fn error_code(&self) -> Option<&str> {
        match &self.result.outcome {
            Outcome::Ok => None,
            Outcome::Error { code, .. } => Some(code),
        }
    }

    /// The error message when the command failed.
    pub fn error_message(&self) -> Option<&str> {
        match &self.result.outcome {
            Outcome::Ok => None,
            Outcome::Error { message, .. } => Some(message),
        }
    }

    /// Bodies of this command's frames whose kind is `kind` (e.g. `nvme.identify`).
    pub fn bodies_of_kind(&self, kind: &str) -> Vec<&Body> {
        self.frames
            .iter()
            .map(|f| &f.body)
            .filter(|b| b.kind() == kind)
            .collect()
    }
}
