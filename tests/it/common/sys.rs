//! The whole-system fixture: a pipemail home in a scratch directory, mail
//! users with Maildirs, and the processes a test starts (servers under
//! tcp-serve, the queue under local-spawn, Python peers), each with a log
//! file; stopped by pid, last started first, when it drops. As root the
//! mail users, the queue and the servers run as nobody (65534), so every
//! uid switch is real. Areas add their own parts on top (queuerun's fake
//! deliveries, deploy's installed prefix, faults' tmpfs homes).

use super::*;
use std::os::unix::fs::PermissionsExt;

/// How a [`Sys`] is laid out; `Setup::default()` is e2e's.
#[derive(Default)]
pub struct Setup<'a> {
    /// The mail users, each with a Maildir in its home (base/u/NAME
    /// unless given: a tmpfs mount point, say).
    pub users: &'a [(&'a str, Option<PathBuf>)],
    /// The home (base/home unless given).
    pub home: Option<PathBuf>,
    /// queue/ stays the test's (root's): the queue runs without
    /// local-spawn -u.
    pub own_queue: bool,
}

pub struct Sys {
    pub base: PathBuf,
    pub home: PathBuf,
    /// Who the mail users, the queue and the servers are: nobody as root.
    pub uid: u32,
    pub gid: u32,
    pub root: bool,
    /// More environment for every command (the area's fakes).
    pub env: Vec<(String, String)>,
    users: Vec<(String, PathBuf)>,
    logs: Vec<PathBuf>,
    /// The processes started (but the queue), in order.
    pub procs: Vec<Proc>,
    /// The queue (local-spawn queue-run, or queue-run alone); stopped after
    /// every other process.
    pub queue: Proc,
    queue_started: Instant,
}

impl Drop for Sys {
    fn drop(&mut self) {
        while let Some(g) = self.procs.pop() {
            drop(g);
        }
        drop(std::mem::replace(&mut self.queue, Proc(None)));
        if std::thread::panicking() {
            for l in &self.logs {
                let t = std::fs::read(l).unwrap_or_default();
                let t = &t[t.len().saturating_sub(6000)..];
                eprintln!("--- {}\n{}", l.display(), String::from_utf8_lossy(t));
            }
        } else {
            // Kept for a look after a failure; megabytes otherwise.
            let _ = std::fs::remove_dir_all(&self.base);
        }
    }
}

impl Sys {
    /// A home with control/me and control/locals mail.example.org, the
    /// alias user (postmaster, mailer-daemon) with a Maildir, and `users`
    /// in users/assign, each with a Maildir under base/u/.
    pub fn new(tag: &str, users: &[&str]) -> Sys {
        let u: Vec<(&str, Option<PathBuf>)> = users.iter().map(|u| (*u, None)).collect();
        Sys::with(
            tag,
            Setup {
                users: &u,
                ..Setup::default()
            },
        )
    }

    pub fn with(tag: &str, setup: Setup) -> Sys {
        let base = scratch(tag);
        let home = setup.home.unwrap_or_else(|| base.join("home"));
        let mut mh = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/make-home"));
        mh.arg(&home);
        if is_root() && !setup.own_queue {
            mh.arg(NOBODY.to_string());
        }
        assert!(mh.status().unwrap().success());
        let mut s = Sys::bare(base, home);
        let (root, uid, gid) = (s.root, s.uid, s.gid);
        s.control("me", "mail.example.org\n");
        s.control("locals", "mail.example.org\n");
        let alias = s.home.join("alias");
        for d in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(alias.join("Maildir").join(d)).unwrap();
        }
        for a in ["postmaster", "mailer-daemon"] {
            std::fs::write(alias.join(format!(".qmail-{}", a)), "./Maildir/\n").unwrap();
        }
        std::fs::set_permissions(&alias, std::fs::Permissions::from_mode(0o755)).unwrap();
        if root {
            chown_r(&alias, uid, gid);
            // relay/ belongs to the uid check-password switches to (relay-stamp(8)).
            chown(&s.home.join("relay"), uid, gid);
        }
        let mut assign = String::new();
        for (u, h) in setup.users {
            let h = h.clone().unwrap_or_else(|| s.base.join("u").join(u));
            for d in ["cur", "new", "tmp"] {
                std::fs::create_dir_all(h.join("Maildir").join(d)).unwrap();
            }
            std::fs::set_permissions(&h, std::fs::Permissions::from_mode(0o755)).unwrap();
            if root {
                chown_r(&h, uid, gid);
            }
            assign.push_str(&format!(
                "={0}:{0}:{1}:{2}:{3}:::\n",
                u,
                uid,
                gid,
                h.display()
            ));
            s.users.push((u.to_string(), h));
        }
        assign.push_str(".\n");
        std::fs::write(s.home.join("users/assign"), assign).unwrap();
        s
    }

    /// A system around a home laid out already (scripts/install's), in
    /// `base` (removed after a pass).
    pub fn bare(base: PathBuf, home: PathBuf) -> Sys {
        let (uid, gid) = mail_ids();
        Sys {
            base,
            home,
            uid,
            gid,
            root: is_root(),
            env: Vec::new(),
            users: Vec::new(),
            logs: Vec::new(),
            procs: Vec::new(),
            queue: Proc(None),
            queue_started: Instant::now(),
        }
    }

    pub fn control(&self, name: &str, text: &str) {
        control(&self.home, name, text);
    }

    pub fn user_home(&self, u: &str) -> PathBuf {
        match self.users.iter().find(|x| x.0 == u) {
            Some(x) => x.1.clone(),
            None => self.base.join("u").join(u),
        }
    }

    /// (file name, contents) of every message in DIR/Maildir's new/ and
    /// cur/ (a file gone while read is left out).
    pub fn delivered_in(&self, dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut v = Vec::new();
        for sub in ["new", "cur"] {
            let d = dir.join("Maildir").join(sub);
            for f in files(&d) {
                if let Ok(b) = std::fs::read(d.join(&f)) {
                    v.push((f, b));
                }
            }
        }
        v
    }

    /// The messages in DIR/Maildir (new/ and cur/), by file name.
    pub fn maildir(&self, dir: &Path) -> Vec<Vec<u8>> {
        self.delivered_in(dir).into_iter().map(|x| x.1).collect()
    }

    pub fn mail_of(&self, u: &str) -> Vec<Vec<u8>> {
        self.maildir(&self.user_home(u))
    }

    /// `prog` with a cleared environment: PATH, PIPEMAIL_HOME, the
    /// system's [`Sys::env`], then `env`.
    pub fn command(&self, prog: &Path, env: &[(&str, &str)]) -> Command {
        let mut c = command(prog, &[], &[]);
        c.env("PIPEMAIL_HOME", &self.home);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }

    /// base/NAME.log, appended to (shown after a failure).
    pub fn log(&mut self, name: &str) -> std::fs::File {
        let p = self.base.join(format!("{}.log", name));
        if !self.logs.contains(&p) {
            self.logs.push(p.clone());
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .unwrap()
    }

    pub fn log_text(&self, name: &str) -> String {
        String::from_utf8_lossy(
            &std::fs::read(self.base.join(format!("{}.log", name))).unwrap_or_default(),
        )
        .into_owned()
    }

    /// Starts `c` with stdin from /dev/null and stdout and stderr to
    /// NAME.log; stopped with the system.
    pub fn start(&mut self, name: &str, mut c: Command) {
        let log = self.log(name);
        c.stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.procs.push(Proc::spawn(&mut c));
    }

    /// Starts `c` (stderr to NAME.log), which prints its port first.
    pub fn start_listener(&mut self, name: &str, mut c: Command) -> u16 {
        c.stdin(Stdio::null()).stderr(self.log(name));
        let (p, port) = start_listener(&mut c, name);
        self.procs.push(p);
        port
    }

    /// `tcp-serve -1 [-u nobody -g nobody] OPTS 127.0.0.1 0 PROG...`; returns the port.
    /// `drop_uid` false keeps root (for check-password, which must switch itself).
    pub fn serve(
        &mut self,
        name: &str,
        env: &[(&str, &str)],
        opts: &[&str],
        prog: &[String],
        drop_uid: bool,
    ) -> u16 {
        let mut c = self.command(&bin("tcp-serve"), env);
        c.arg("-1");
        if self.root && drop_uid {
            c.args(["-u", &self.uid.to_string(), "-g", &self.gid.to_string()]);
        }
        c.args(opts).args(["127.0.0.1", "0"]).args(prog);
        self.start_listener(name, c)
    }

    /// tcp-serve running smtp-recv (through `pre`, e.g. relay-gate).
    pub fn smtp(&mut self, name: &str, env: &[(&str, &str)], opts: &[&str], pre: &[&str]) -> u16 {
        let mut prog: Vec<String> = pre
            .iter()
            .map(|p| bin(p).to_string_lossy().into_owned())
            .collect();
        prog.push(bin("smtp-recv").to_string_lossy().into_owned());
        self.serve(name, env, opts, &prog, true)
    }

    /// `local-spawn [-u nobody] queue-run`, its log in queue.log.
    pub fn queue(&mut self, env: &[(&str, &str)]) {
        self.queue_logged("queue", env);
    }

    /// [`Sys::queue`] with its log in NAME.log.
    pub fn queue_logged(&mut self, name: &str, env: &[(&str, &str)]) {
        let mut c = self.command(&bin("local-spawn"), env);
        if self.root {
            c.args(["-u", &self.uid.to_string()]);
        }
        c.arg(bin("queue-run"));
        self.start_queue(name, c);
    }

    /// Starts `c` as the queue (stdout to /dev/null, stderr to NAME.log).
    pub fn start_queue(&mut self, name: &str, mut c: Command) {
        let log = self.log(name);
        c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        self.queue = Proc::spawn(&mut c);
        self.queue_started = Instant::now();
    }

    /// How long the queue has been running.
    pub fn queue_age(&self) -> Duration {
        self.queue_started.elapsed()
    }

    /// Whether queue-run has finished every job and taken every file in drop/.
    pub fn queue_idle(&self) -> bool {
        let q = self.home.join("queue");
        files(&q.join("mess")).is_empty() && files(&q.join("drop")).is_empty()
    }

    /// Nothing committed is waiting: no job in mess/, no submission in drop/.
    pub fn queue_empty(&self) -> bool {
        files(&self.home.join("queue/mess")).is_empty()
            && files(&self.home.join("queue/drop"))
                .iter()
                .all(|f| !is_submission(f))
    }

    /// A Python helper that prints its port first; stopped with the system.
    pub fn start_py(&mut self, name: &str, script: &str, args: &[&str]) -> u16 {
        let log = self.log(name);
        let (p, port) = start_py(&self.base, name, script, args, Stdio::from(log));
        self.procs.push(p);
        port
    }

    /// The test SMTP peer on addr:port (0: any); returns (port, its record file).
    pub fn sink(&mut self, name: &str, addr: &str, port: u16) -> (u16, PathBuf) {
        let log = self.log(name);
        let (p, port, out) = smtp_peer(&self.base, name, addr, port, None, false, log.into());
        self.procs.push(p);
        (port, out)
    }
}
