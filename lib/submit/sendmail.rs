//! The sendmail command line (sendmail(8)): what cron, PHP, mutt and git
//! send-email pass, turned into a mail-inject submission or one of the
//! other modes. Exit codes are sendmail's (sysexits.h).

use super::inject::{Mode, Options};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

pub const EX_OK: i32 = 0;
pub const EX_USAGE: i32 = 64;
pub const EX_DATAERR: i32 = 65;
pub const EX_UNAVAILABLE: i32 = 69;
pub const EX_OSERR: i32 = 71;
pub const EX_TEMPFAIL: i32 = 75;

/// What to do.
#[derive(Debug, Clone)]
pub enum Action {
    /// `-bm` (the default): submit the message on stdin.
    Submit { opts: Options, verbose: bool },
    /// `-bs`: SMTP on stdin/stdout through smtp-recv.
    Smtp,
    /// `-bp`: list the queue (queue-list).
    List,
    /// `-q...`: wake queue-run.
    Poke,
    /// `-bi` (or the name newaliases): nothing to rebuild; say so.
    Newaliases,
}

/// What `newaliases` says: there is nothing to rebuild.
pub const NEWALIASES: &[u8] = b"no aliases database to rebuild: aliases are the alias user's .qmail-NAME files, read at each delivery (pipemail-dot(5))";

/// The action a link name implies: `mailq` lists the queue, `newaliases`
/// rebuilds aliases; None for any other name (sendmail's options decide).
pub fn by_name(argv0: &std::ffi::OsStr) -> Option<Action> {
    let base = argv0.as_encoded_bytes().rsplit(|&c| c == b'/').next()?;
    match base {
        b"mailq" => Some(Action::List),
        b"newaliases" => Some(Action::Newaliases),
        _ => None,
    }
}

fn bytes(v: OsString) -> Vec<u8> {
    v.into_vec()
}

fn text(v: &OsString) -> String {
    v.to_string_lossy().into_owned()
}

/// Parses sendmail's options. Err is the message for an EX_USAGE error:
/// empty for a command line out of the grammar (print the usage line).
pub fn parse(mut p: lexopt::Parser) -> Result<Action, String> {
    use lexopt::Arg::*;
    let mut opts = Options {
        mode: Mode::Args,
        dot: true,
        ..Options::default()
    };
    let mut verbose = false;
    let mut action: Option<Action> = None;
    let err = |_: lexopt::Error| String::new();
    while let Some(arg) = p.next().map_err(err)? {
        match arg {
            Short('t') => opts.mode = Mode::Both,
            Short('i') => opts.dot = false,
            Short('f') | Short('r') => opts.sender = Some(bytes(p.value().map_err(err)?)),
            Short('F') => opts.name = Some(bytes(p.value().map_err(err)?)),
            Short('v') => verbose = true,
            Short('b') => {
                let v = p.value().map_err(err)?;
                match v.to_str() {
                    Some("m") => {}
                    Some("s") => action = Some(Action::Smtp),
                    Some("p") => action = Some(Action::List),
                    Some("i") => action = Some(Action::Newaliases),
                    _ => return Err(format!("unsupported mode -b{}", text(&v))),
                }
            }
            Short('o') => {
                if p.value().map_err(err)? == "i" {
                    opts.dot = false;
                }
            }
            Short('q') => {
                let _ = p.optional_value();
                action = Some(Action::Poke);
            }
            // Options that take a value and do not matter here.
            Short('A' | 'B' | 'C' | 'h' | 'L' | 'N' | 'O' | 'R' | 'V' | 'X') => {
                p.value().map_err(err)?;
            }
            Short('G' | 'U' | 'm' | 'n') => {}
            Value(v) => opts.recipients.push(bytes(v)),
            _ => return Err(String::new()),
        }
    }
    if action.is_none() && opts.mode == Mode::Args && opts.recipients.is_empty() {
        return Err("no recipients (give them as arguments, or use -t)".to_string());
    }
    Ok(action.unwrap_or(Action::Submit { opts, verbose }))
}

/// The sendmail exit code for a submission error.
pub fn exit_code(e: &super::inject::Error) -> i32 {
    use super::inject::Error::*;
    match e {
        Usage(_) => EX_USAGE,
        Data(_) => EX_DATAERR,
        Perm(_) => EX_UNAVAILABLE,
        Temp(_) => EX_TEMPFAIL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_v(v: &[&str]) -> Result<Action, String> {
        parse(lexopt::Parser::from_args(v.iter()))
    }

    #[test]
    fn common_command_lines() {
        // cronie
        let Ok(Action::Submit { opts, .. }) = parse_v(&[
            "-FCronDaemon",
            "-i",
            "-B8BITMIME",
            "-odi",
            "-oem",
            "-oi",
            "-t",
            "-f",
            "root",
        ]) else {
            panic!()
        };
        assert_eq!(opts.mode, Mode::Both);
        assert!(!opts.dot);
        assert_eq!(opts.sender.as_deref(), Some(&b"root"[..]));
        assert_eq!(opts.name.as_deref(), Some(&b"CronDaemon"[..]));
        // mutt
        let Ok(Action::Submit { opts, .. }) = parse_v(&["-oem", "-oi", "--", "a@b", "-c@d"]) else {
            panic!()
        };
        assert_eq!(opts.recipients, vec![b"a@b".to_vec(), b"-c@d".to_vec()]);
        assert_eq!(opts.mode, Mode::Args);
        assert!(!opts.dot);
        let Ok(Action::Submit { opts, verbose }) = parse_v(&["-v", "-fx@y", "-N", "never", "u"])
        else {
            panic!()
        };
        assert!(verbose && opts.dot);
        assert_eq!(opts.sender.as_deref(), Some(&b"x@y"[..]));
        assert!(matches!(parse_v(&["-bs"]), Ok(Action::Smtp)));
        assert!(matches!(parse_v(&["-bp"]), Ok(Action::List)));
        assert!(matches!(parse_v(&["-bi"]), Ok(Action::Newaliases)));
        use std::ffi::OsStr;
        assert!(matches!(
            by_name(OsStr::new("/usr/bin/mailq")),
            Some(Action::List)
        ));
        assert!(matches!(
            by_name(OsStr::new("newaliases")),
            Some(Action::Newaliases)
        ));
        assert!(by_name(OsStr::new("/usr/sbin/sendmail")).is_none());
        assert!(matches!(parse_v(&["-q"]), Ok(Action::Poke)));
        assert!(matches!(parse_v(&["-q30m"]), Ok(Action::Poke)));
        assert!(parse_v(&["-bd"]).is_err());
        assert!(parse_v(&["-Z"]).is_err());
        assert!(parse_v(&["--bogus"]).is_err());
        assert!(parse_v(&["-f"]).is_err());
    }
}
