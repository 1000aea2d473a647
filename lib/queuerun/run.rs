//! The manager loop of queue-run(8): takes submissions over, schedules
//! deliveries on the local channel (through local-spawn) and the remote
//! channel (remote-send, one run per message and domain), records every
//! outcome, retries, bounces and removes finished messages.

use super::bounce::{self, Failure, Kind};
use super::store::{self, Dirs, Info, Rec};
use super::{sched, spawn, Config};
use crate::exit;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

static TERM: AtomicBool = AtomicBool::new(false);
static HUP: AtomicBool = AtomicBool::new(false);
static ALRM: AtomicBool = AtomicBool::new(false);
static WAKE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(s: libc::c_int) {
    match s {
        libc::SIGTERM => TERM.store(true, Ordering::SeqCst),
        libc::SIGHUP => HUP.store(true, Ordering::SeqCst),
        libc::SIGALRM => ALRM.store(true, Ordering::SeqCst),
        _ => {}
    }
    let fd = WAKE.load(Ordering::SeqCst);
    if fd >= 0 {
        crate::sys::write_ignored(fd, b"s");
    }
}

const ADMIN_BOUNCE: &[u8] =
    b"This message was removed from the queue by the administrator. (#5.0.0)";

/// The rescan period for drop/ (and the longest poll).
pub const SCAN_SECS: u64 = 60;

#[derive(Debug, Clone, PartialEq, Eq)]
enum St {
    Pending(u64),
    Busy,
    Done,
}

struct Job {
    info: Info,
    st: Vec<St>,
    held: bool,
    /// Deleted by queue-ctl: no bounce for it any more.
    bounced: bool,
    /// Permanent failures not bounced yet (a `B` record clears them).
    fails: Vec<Failure>,
    /// The last deferral text of each recipient (for the delay notice).
    delays: Vec<Option<Vec<u8>>>,
    /// The delay notice went (`W`).
    warned: bool,
    bounce_next: u64,
    /// queue-ctl delete (`X`) or bounce (`B`) given while deliveries were in
    /// flight: their temporary failures get the same treatment.
    doom: Option<u8>,
}

/// What became of a DSN.
#[derive(PartialEq, Eq)]
enum Sent {
    Queued,
    /// Not queued, and never will be (triple bounce, refused for good).
    Dropped,
    /// Not queued now: again after bounce_next.
    Later,
}

struct Flight {
    id: String,
    rcpts: Vec<usize>,
    remote: bool,
}

/// queue-run's end of local-spawn: requests go to the socket `w` (with
/// the message's descriptor), replies come on `r` (spawn.rs).
pub struct Spawner {
    pub w: i32,
    pub r: i32,
}

struct Manager {
    cfg: Config,
    d: Dirs,
    jobs: BTreeMap<String, Job>,
    /// The journal of jobs (queue/jobs).
    journal: store::Journal,
    /// Jobs of an old queue kept in info/ID.
    old: HashSet<String>,
    /// Finished jobs waiting for their batched removal.
    removable: Vec<String>,
    flights: HashMap<u64, Flight>,
    next_did: u64,
    sp: Spawner,
    sp_buf: Vec<u8>,
    sp_open: bool,
    trigger: i32,
    ctl: i32,
    trig_buf: Vec<u8>,
    ctl_buf: Vec<u8>,
    busy_local: usize,
    busy_remote: usize,
    last_scan: u64,
    stopping: bool,
    code: i32,
    /// RFC 1566 counters for queue-stat(8), kept in queue/stats.
    stats: super::stats::Stats,
}

fn log(parts: &[&[u8]]) {
    exit::info(parts);
}

fn oneline(t: &[u8]) -> Vec<u8> {
    crate::parse::trim(t)
        .iter()
        .map(|&c| if c == b'\n' { b'/' } else { c })
        .collect()
}

fn domain_of(a: &[u8]) -> Vec<u8> {
    crate::parse::split_addr(a).1.to_ascii_lowercase()
}

fn nonblock(fd: i32) {
    let _ = crate::sys::set_nonblock(fd);
}

fn open_fifo(p: &std::path::Path, mode: u32) -> std::io::Result<i32> {
    use std::os::unix::fs::PermissionsExt;
    if !p.exists() {
        crate::sys::fs::mkfifo(p, mode)?;
        let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode));
    }
    crate::sys::fs::open(p, libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC)
}

/// A user given as a name or a uid: (uid, gid).
pub fn account_ids(name: &[u8]) -> Option<(u32, u32)> {
    if let Some(n) = crate::parse::number(name) {
        let gid = crate::sys::getpwuid(n as u32)
            .ok()
            .flatten()
            .map(|p| p.gid)
            .unwrap_or(n as u32);
        return Some((n as u32, gid));
    }
    crate::sys::getpwnam(name)
        .ok()
        .flatten()
        .map(|p| (p.uid, p.gid))
}

/// Runs queue-run until SIGTERM (0) or until local-spawn goes away (111).
pub fn main(sp: Spawner) -> i32 {
    let cfg = match Config::load() {
        Ok(c) => c,
        Err(e) => exit::die(exit::TEMP, &[b"unable to read controls: ", &e.text()]),
    };
    let d = Dirs::new();
    if let Err(e) = d.create() {
        exit::die_sys(
            exit::TEMP,
            &[
                b"unable to create directories in ",
                crate::control::bytes(&d.queue),
            ],
            &e,
        );
    }
    lock(&d);
    let trigger = open_fifo(&crate::queue::trigger_path(), 0o622)
        .unwrap_or_else(|e| exit::die_sys(exit::TEMP, &[b"unable to open queue/trigger"], &e));
    let ctl = open_fifo(&d.sub("ctl"), 0o600)
        .unwrap_or_else(|e| exit::die_sys(exit::TEMP, &[b"unable to open queue/ctl"], &e));
    let (wr, ww) = crate::sys::pipe()
        .unwrap_or_else(|e| exit::die_sys(exit::TEMP, &[b"unable to make a pipe"], &e));
    nonblock(wr);
    nonblock(ww);
    WAKE.store(ww, Ordering::SeqCst);
    use crate::sys::signals::{self, Action};
    signals::set(
        &[libc::SIGTERM, libc::SIGHUP, libc::SIGALRM],
        Action::Handler(on_signal),
    );
    crate::sys::signal_ignore(libc::SIGPIPE, true);
    nonblock(sp.r);
    let stats = super::stats::Stats::load(&d);
    let (journal, recs) = store::Journal::open(&d)
        .unwrap_or_else(|e| exit::die_sys(exit::TEMP, &[b"unable to open queue/jobs"], &e));
    let mut m = Manager {
        journal,
        old: HashSet::new(),
        cfg,
        d,
        jobs: BTreeMap::new(),
        removable: Vec::new(),
        flights: HashMap::new(),
        next_did: 1,
        sp,
        sp_buf: Vec::new(),
        sp_open: true,
        trigger,
        ctl,
        trig_buf: Vec::new(),
        ctl_buf: Vec::new(),
        busy_local: 0,
        busy_remote: 0,
        last_scan: 0,
        stopping: false,
        code: 0,
        stats,
    };
    let mut all = BTreeMap::new();
    match store::legacy_infos(&m.d) {
        Ok(v) => {
            for (id, info) in v {
                m.old.insert(id.clone());
                all.insert(id, info);
            }
        }
        Err(e) => exit::die_sys(exit::TEMP, &[b"unable to read queue/info"], &e),
    }
    all.extend(recs);
    let all: Vec<(String, Info)> = all.into_iter().collect();
    if let Err(e) = store::cleanup(&m.d, &all) {
        exit::die_sys(exit::TEMP, &[b"unable to clean up the queue"], &e);
    }
    m.load_all(all);
    m.run(wr)
}

/// One queue-run per queue: an exclusive flock on queue/info, a directory
/// of mode 0700 that no other uid can open (a lock file that others may
/// open would let any user stall queue-run with a shared lock).
fn lock(d: &Dirs) {
    let p = d.sub("info");
    let fl = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let fd = crate::sys::fs::open(&p, fl)
        .unwrap_or_else(|e| exit::die_sys(exit::TEMP, &[b"unable to open queue/info"], &e));
    if !crate::sys::locks::try_lock(fd).unwrap_or(false) {
        log(&[b"waiting for the lock on queue/info (another queue-run is running)"]);
        if let Err(e) = crate::sys::locks::lock(fd) {
            exit::die_sys(exit::TEMP, &[b"unable to lock queue/info"], &e);
        }
    }
}

impl Manager {
    /// Schedules every committed job (`all`: the journal's records and
    /// old info/ files) whose message is there; the others are finished
    /// (a crash came in the middle of their removal). Then the journal is
    /// rewritten without them.
    fn load_all(&mut self, all: Vec<(String, Info)>) {
        let n = all.len();
        for (id, info) in all {
            if !self.d.mess(&id).exists() {
                log(&[b"end msg ", id.as_bytes(), b" (removed after a restart)"]);
                let _ = std::fs::remove_file(self.d.state(&id));
                if self.old.remove(&id) {
                    let _ = std::fs::remove_file(self.d.info(&id));
                }
                continue;
            }
            // A truncation lost in a crash: the record says how long.
            if let Err(e) = store::truncate_mess(&self.d, &id, info.size) {
                exit::warn(&[
                    b"unable to truncate mess/",
                    id.as_bytes(),
                    b": ",
                    exit::errtext(&e).as_bytes(),
                ]);
            }
            self.add_job(id, info, true)
        }
        self.journal.dead = n - self.jobs.len();
        self.compact(0);
    }

    /// Rewrites the journal when `at` or more of its records are dead and
    /// they outnumber the live ones (`at` 0: when any is dead).
    fn compact(&mut self, at: usize) {
        let dead = self.journal.dead;
        let due = if at == 0 {
            dead > 0
        } else {
            dead >= at && dead > self.jobs.len()
        };
        if !due {
            return;
        }
        let live = self.jobs.iter().map(|(id, j)| (id, &j.info));
        if let Err(e) = self.journal.compact(&self.d, live) {
            exit::warn(&[
                b"unable to rewrite queue/jobs: ",
                exit::errtext(&e).as_bytes(),
            ]);
        }
    }

    fn add_job(&mut self, id: String, info: Info, recovered: bool) {
        let n = info.rcpts.len();
        let mut j = Job {
            st: vec![St::Pending(0); n],
            info,
            held: false,
            bounced: false,
            fails: Vec::new(),
            delays: vec![None; n],
            warned: false,
            bounce_next: 0,
            doom: None,
        };
        if recovered {
            match store::load_state(&self.d.state(&id), true) {
                Ok(recs) => {
                    for r in recs {
                        apply(&mut j, r);
                    }
                }
                Err(e) => exit::warn(&[
                    b"unable to read state/",
                    id.as_bytes(),
                    b": ",
                    exit::errtext(&e).as_bytes(),
                ]),
            }
        } else {
            self.stats.received(&j.info);
            log(&[b"new msg ", id.as_bytes()]);
            log(&[
                b"info msg ",
                id.as_bytes(),
                b": bytes ",
                &crate::parse::fmt(j.info.size),
                b" from <",
                &j.info.sender,
                b"> uid ",
                &crate::parse::fmt(j.info.uid as u64),
            ]);
        }
        self.jobs.insert(id, j);
    }

    fn save_stats(&mut self, force: bool) {
        if let Err(e) = self.stats.save(&self.d, force) {
            exit::warn(&[
                b"unable to write queue/stats: ",
                exit::errtext(&e).as_bytes(),
            ]);
        }
    }

    fn status(&self) {
        log(&[
            b"status: local ",
            &crate::parse::fmt(self.busy_local as u64),
            b"/",
            &crate::parse::fmt(self.cfg.concurrency_local as u64),
            b" remote ",
            &crate::parse::fmt(self.busy_remote as u64),
            b"/",
            &crate::parse::fmt(self.cfg.concurrency_remote as u64),
        ]);
    }

    fn scan(&mut self, now: u64) {
        self.last_scan = now;
        let jobs = &self.jobs;
        let known = |id: &str| jobs.get(id).map(|j| j.info.size);
        match store::takeover_all(&self.d, now, self.cfg.limits, &mut self.journal, &known) {
            Ok(v) => {
                for (id, info) in v {
                    self.add_job(id, info, false);
                }
            }
            Err(e) => exit::warn(&[b"unable to scan queue/drop: ", exit::errtext(&e).as_bytes()]),
        }
    }

    fn run(&mut self, wake_r: i32) -> i32 {
        let now = super::now();
        self.scan(now);
        loop {
            if TERM.swap(false, Ordering::SeqCst) && !self.stopping {
                log(&[b"exiting when the deliveries in flight are done"]);
                self.stopping = true;
            }
            if HUP.swap(false, Ordering::SeqCst) {
                match Config::load() {
                    Ok(c) => {
                        self.cfg = c;
                        log(&[b"reread control files"]);
                    }
                    Err(e) => exit::warn(&[b"unable to reread controls: ", &e.text()]),
                }
            }
            if ALRM.swap(false, Ordering::SeqCst) {
                log(&[b"retrying every message now"]);
                self.retry(|_, _| true);
            }
            if self.stopping && self.flights.is_empty() {
                self.save_stats(true);
                log(&[b"status: exiting"]);
                return self.code;
            }
            let now = super::now();
            if now.saturating_sub(self.last_scan) >= SCAN_SECS {
                self.scan(now);
            }
            let next = self.schedule(now);
            let longest = if super::mailq::refresh(&self.d, now) {
                super::mailq::PERIOD
            } else {
                SCAN_SECS
            };
            let mut timeout_ms = match next {
                Some(t) if t > now => ((t - now).min(longest) * 1000) as i32,
                _ => (longest * 1000) as i32,
            };
            self.save_stats(false);
            if self.stats.dirty {
                timeout_ms = timeout_ms.min(1000);
            }
            let mut pfds = vec![
                libc::pollfd {
                    fd: wake_r,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.trigger,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.ctl,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: if self.sp_open { self.sp.r } else { -1 },
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            if crate::sys::poll(&mut pfds, timeout_ms).unwrap_or(0) == 0 {
                continue;
            }
            let mut buf = [0u8; 4096];
            if pfds[0].revents != 0 {
                while let Ok(n) = crate::sys::read(wake_r, &mut buf) {
                    if n == 0 {
                        break;
                    }
                }
            }
            if pfds[1].revents != 0 {
                let mut woke = false;
                while let Ok(n) = crate::sys::read(self.trigger, &mut buf) {
                    if n == 0 {
                        break;
                    }
                    woke = true;
                    self.trig_buf.extend_from_slice(&buf[..n]);
                }
                self.trigger_commands();
                if woke {
                    self.scan(super::now());
                }
            }
            if pfds[2].revents != 0 {
                while let Ok(n) = crate::sys::read(self.ctl, &mut buf) {
                    if n == 0 {
                        break;
                    }
                    self.ctl_buf.extend_from_slice(&buf[..n]);
                }
                self.ctl_commands();
            }
            if pfds[3].revents != 0 {
                self.spawner_replies();
            }
        }
    }

    /// Starts what is due; returns the earliest future due time.
    fn schedule(&mut self, now: u64) -> Option<u64> {
        let mut earliest: Option<u64> = None;
        let mut finished = Vec::new();
        let mut prompt = Vec::new();
        let ids: Vec<String> = self.jobs.keys().cloned().collect();
        for id in ids {
            let (mut locals, mut remotes): (Vec<usize>, BTreeMap<Vec<u8>, Vec<usize>>) =
                (Vec::new(), BTreeMap::new());
            {
                let j = &self.jobs[&id];
                if j.st.iter().all(|s| *s == St::Done) {
                    if j.bounce_next <= now {
                        finished.push(id.clone());
                    } else {
                        earliest = Some(earliest.map_or(j.bounce_next, |e| e.min(j.bounce_next)));
                    }
                    continue;
                }
                if j.held {
                    continue;
                }
                // Failures are bounced at once, one DSN for those of a
                // round of deliveries, while other recipients wait.
                let quiet = !j.st.contains(&St::Busy);
                if quiet && (!j.fails.is_empty() || !self.delayed(j, now).is_empty()) {
                    if j.bounce_next <= now {
                        prompt.push(id.clone());
                    } else {
                        earliest = Some(earliest.map_or(j.bounce_next, |e| e.min(j.bounce_next)));
                    }
                }
                for (i, s) in j.st.iter().enumerate() {
                    if let St::Pending(t) = s {
                        if *t > now {
                            earliest = Some(earliest.map_or(*t, |e| e.min(*t)));
                        } else if j.info.rcpts[i].local.is_some() {
                            locals.push(i);
                        } else {
                            remotes
                                .entry(domain_of(&j.info.rcpts[i].addr))
                                .or_default()
                                .push(i);
                        }
                    }
                }
            }
            if self.stopping {
                continue;
            }
            for i in locals {
                if self.busy_local >= self.cfg.concurrency_local || !self.sp_open {
                    break;
                }
                self.start_local(&id, i);
            }
            'remote: for (dom, rc) in remotes {
                for part in rc.chunks(spawn::REMOTE_RCPTS_MAX) {
                    if self.busy_remote >= self.cfg.concurrency_remote || !self.sp_open {
                        break 'remote;
                    }
                    self.start_remote(&id, &dom, part.to_vec());
                }
            }
        }
        if !self.stopping {
            for id in prompt {
                if self.bounce(&id, now) {
                    self.delay_notice(&id, now);
                }
            }
            for id in finished {
                self.finish_job(&id, now);
            }
            self.remove_finished(now);
        }
        earliest
    }

    /// Opens mess/ID for a delivery (the descriptor goes to local-spawn).
    fn open_mess(&self, id: &str) -> std::io::Result<std::fs::File> {
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(self.d.mess(id))?;
        if !f.metadata()?.file_type().is_file() {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        Ok(f)
    }

    /// Sends one request with mess/ID attached; false when it could not
    /// (the recipients are then due again in a minute).
    fn request(&mut self, id: &str, rc: &[usize], req: &[u8]) -> bool {
        let sent = self.open_mess(id).and_then(|f| {
            use std::os::fd::AsRawFd;
            crate::sys::net::send_with_fd(self.sp.w, req, f.as_raw_fd())
        });
        match sent {
            Ok(()) => true,
            Err(e) => {
                let gone = matches!(e.raw_os_error(), Some(libc::EPIPE) | Some(libc::ECONNRESET));
                if gone {
                    self.spawner_gone();
                } else {
                    exit::warn(&[
                        b"unable to start a delivery of msg ",
                        id.as_bytes(),
                        b": ",
                        exit::errtext(&e).as_bytes(),
                    ]);
                }
                if let Some(j) = self.jobs.get_mut(id) {
                    for &i in rc {
                        j.st[i] = St::Pending(super::now() + if gone { 0 } else { 60 });
                    }
                }
                false
            }
        }
    }

    fn start_local(&mut self, id: &str, i: usize) {
        let did = self.next_did;
        let j = &self.jobs[id];
        let rcpt = j.info.rcpts[i].local.clone().unwrap_or_default();
        let req = spawn::request(did, &j.info.sender, &rcpt);
        if !self.request(id, &[i], &req) {
            return;
        }
        self.next_did += 1;
        self.jobs.get_mut(id).expect("job").st[i] = St::Busy;
        self.flights.insert(
            did,
            Flight {
                id: id.to_string(),
                rcpts: vec![i],
                remote: false,
            },
        );
        self.busy_local += 1;
        log(&[
            b"starting delivery ",
            &crate::parse::fmt(did),
            b": msg ",
            id.as_bytes(),
            b" to local ",
            &rcpt,
        ]);
        self.status();
    }

    fn start_remote(&mut self, id: &str, dom: &[u8], rc: Vec<usize>) {
        let did = self.next_did;
        let j = &self.jobs[id];
        let addrs: Vec<&[u8]> = rc.iter().map(|&i| &j.info.rcpts[i].addr[..]).collect();
        let req = spawn::request_remote(did, dom, &j.info.sender, &addrs);
        let mut line: Vec<u8> = Vec::new();
        for a in &addrs {
            line.push(b' ');
            line.extend_from_slice(a);
        }
        if !self.request(id, &rc, &req) {
            return;
        }
        let j = self.jobs.get_mut(id).expect("job");
        for &i in &rc {
            j.st[i] = St::Busy;
        }
        self.next_did += 1;
        self.flights.insert(
            did,
            Flight {
                id: id.to_string(),
                rcpts: rc,
                remote: true,
            },
        );
        self.busy_remote += 1;
        log(&[
            b"starting delivery ",
            &crate::parse::fmt(did),
            b": msg ",
            id.as_bytes(),
            b" to remote",
            &line,
        ]);
        self.status();
    }

    fn spawner_gone(&mut self) {
        if !self.sp_open {
            return;
        }
        self.sp_open = false;
        exit::warn(&[b"local-spawn has gone away; exiting"]);
        let now = super::now();
        for (_, f) in std::mem::take(&mut self.flights) {
            if let Some(j) = self.jobs.get_mut(&f.id) {
                for i in f.rcpts {
                    j.st[i] = St::Pending(now);
                }
            }
        }
        self.busy_local = 0;
        self.busy_remote = 0;
        self.stopping = true;
        self.code = exit::TEMP;
    }

    fn spawner_replies(&mut self) {
        let mut buf = [0u8; 8192];
        // Replies read before the end of file still count: record them
        // first, so that only the deliveries really in flight are repeated.
        let mut gone = false;
        loop {
            match crate::sys::read(self.sp.r, &mut buf) {
                Ok(0) => {
                    gone = true;
                    break;
                }
                Ok(n) => self.sp_buf.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    gone = true;
                    break;
                }
            }
        }
        while let Some((did, rep)) = spawn::take_reply(&mut self.sp_buf) {
            let Some(fl) = self.flights.remove(&did) else {
                exit::warn(&[
                    b"local-spawn reported an unknown delivery ",
                    &crate::parse::fmt(did),
                ]);
                continue;
            };
            let results = match rep {
                spawn::Reply::Remote(code, out) if fl.remote => {
                    parse_remote(&out, fl.rcpts.len(), code)
                }
                spawn::Reply::Local(l, t) if l != 0 && !fl.remote => vec![(l, t)],
                _ => vec![
                    (
                        b'Z',
                        b"local-spawn sent a malformed report (#4.3.0)".to_vec()
                    );
                    fl.rcpts.len()
                ],
            };
            if fl.remote {
                self.busy_remote -= 1;
            } else {
                self.busy_local -= 1;
            }
            for (n, (letter, text)) in results.into_iter().enumerate() {
                self.result(did, &fl.id, fl.rcpts[n], letter, &text);
            }
            self.status();
        }
        if gone {
            self.spawner_gone();
        }
    }

    /// Records one recipient's outcome (durably for K and D) and logs it.
    fn result(&mut self, did: u64, id: &str, i: usize, letter: u8, text: &[u8]) {
        let now = super::now();
        let path = self.d.state(id);
        let lifetime = self.cfg.lifetime;
        let Some(j) = self.jobs.get_mut(id) else {
            return;
        };
        let mut letter = letter;
        let mut text = text.to_vec();
        if letter == b'Z' && sched::expired(j.info.birth, now, lifetime) {
            letter = b'D';
            text = crate::parse::trim(&text).to_vec();
            text.extend_from_slice(
                b"\nI'm not going to try again; this message has been in the queue too long.",
            );
        }
        if letter == b'Z' && j.doom == Some(b'B') {
            letter = b'D';
            text = ADMIN_BOUNCE.to_vec();
        }
        let addr = j.info.rcpts[i].addr.clone();
        if letter != b'K' && j.doom == Some(b'X') {
            if let Err(e) = store::append(&path, &Rec::Removed(i), true) {
                exit::warn(&[
                    b"unable to record in state/",
                    id.as_bytes(),
                    b": ",
                    exit::errtext(&e).as_bytes(),
                ]);
            }
            j.st[i] = St::Done;
            log(&[
                b"delivery ",
                &crate::parse::fmt(did),
                if letter == b'D' {
                    b": failure: "
                } else {
                    b": deferral: "
                },
                &addr,
                b": ",
                &oneline(&text),
                b" (deleted)",
            ]);
            return;
        }
        let (rec, what): (Rec, &[u8]) = match letter {
            b'K' => (Rec::Done(i), b"success"),
            b'D' => (Rec::Failed(i, text.clone()), b"failure"),
            _ => (Rec::Deferred(i, now, text.clone()), b"deferral"),
        };
        // The last success of a job without failures is made durable by
        // the removal of mess/ID (remove_jobs) that follows at once.
        let last_ok = letter == b'K'
            && j.fails.is_empty()
            && j.st
                .iter()
                .enumerate()
                .all(|(k, s)| k == i || matches!(s, St::Done));
        if let Err(e) = store::append(&path, &rec, letter != b'Z' && !last_ok) {
            exit::warn(&[
                b"unable to record delivery in state/",
                id.as_bytes(),
                b": ",
                exit::errtext(&e).as_bytes(),
            ]);
        }
        let local = j.info.rcpts[i].local.is_some();
        self.stats.outcome(did, local, letter, j.info.size);
        match letter {
            b'K' => j.st[i] = St::Done,
            b'D' => {
                j.st[i] = St::Done;
                j.fails.push(Failure {
                    addr: addr.clone(),
                    text: text.clone(),
                });
            }
            _ => {
                j.delays[i] = Some(text.clone());
                let c = if j.info.rcpts[i].local.is_some() {
                    sched::LOCAL
                } else {
                    sched::REMOTE
                };
                j.st[i] = St::Pending(sched::next_retry(j.info.birth, now, c));
            }
        }
        log(&[
            b"delivery ",
            &crate::parse::fmt(did),
            b": ",
            what,
            b": ",
            &addr,
            b": ",
            &oneline(&text),
        ]);
    }

    /// A job whose recipients are all done: bounce if needed, then remove.
    fn finish_job(&mut self, id: &str, now: u64) {
        if self.bounce(id, now) {
            self.removable.push(id.to_string());
        }
    }

    /// Sends one DSN for the failures not yet bounced (and records that it
    /// went: `B`); false when it must be tried again later.
    fn bounce(&mut self, id: &str, now: u64) -> bool {
        let Some(j) = self.jobs.get(id) else {
            return false;
        };
        if !j.fails.is_empty() && !j.bounced {
            let fails = j.fails.clone();
            if self.send_dsn(id, &fails, None, now) == Sent::Later {
                return false;
            }
            let j = self.jobs.get_mut(id).expect("job");
            j.fails.clear();
            if let Err(e) = store::append(&self.d.state(id), &Rec::Bounced, true) {
                exit::warn(&[
                    b"unable to record the bounce in state/",
                    id.as_bytes(),
                    b": ",
                    exit::errtext(&e).as_bytes(),
                ]);
                j.bounce_next = now + 60;
                return false;
            }
        }
        true
    }

    /// The recipients of a job due for its delay notice (deferred, still
    /// pending, the message older than control/bouncedelay), if any.
    fn delayed(&self, j: &Job, now: u64) -> Vec<Failure> {
        if j.warned
            || self.cfg.bouncedelay == 0
            || now < j.info.birth.saturating_add(self.cfg.bouncedelay)
            || !matches!(bounce::kind(&j.info.sender, &self.cfg), Kind::Bounce(_))
        {
            return Vec::new();
        }
        j.st.iter()
            .zip(&j.delays)
            .zip(&j.info.rcpts)
            .filter_map(|((s, d), r)| match (s, d) {
                (St::Pending(_), Some(t)) => Some(Failure {
                    addr: r.addr.clone(),
                    text: t.clone(),
                }),
                _ => None,
            })
            .collect()
    }

    /// Sends the one delay notice of a job (Action: delayed) and records it
    /// (`W`).
    fn delay_notice(&mut self, id: &str, now: u64) {
        let Some(j) = self.jobs.get(id) else {
            return;
        };
        let late = self.delayed(j, now);
        if late.is_empty() {
            return;
        }
        let until = j.info.birth.saturating_add(self.cfg.lifetime);
        if self.send_dsn(id, &late, Some(until), now) == Sent::Later {
            return;
        }
        let j = self.jobs.get_mut(id).expect("job");
        j.warned = true;
        if let Err(e) = store::append(&self.d.state(id), &Rec::Warned, true) {
            exit::warn(&[
                b"unable to record the delay notice in state/",
                id.as_bytes(),
                b": ",
                exit::errtext(&e).as_bytes(),
            ]);
        }
    }

    /// Queues a DSN about `rcpts` of job `id`: a bounce, or a delay notice
    /// when `until` (Will-Retry-Until) is given.
    fn send_dsn(&mut self, id: &str, rcpts: &[Failure], until: Option<u64>, now: u64) -> Sent {
        let Some(j) = self.jobs.get_mut(id) else {
            return Sent::Later;
        };
        let (to, double) = match bounce::kind(&j.info.sender, &self.cfg) {
            Kind::Triple => {
                exit::warn(&[b"triple bounce: discarding msg ", id.as_bytes()]);
                return Sent::Dropped;
            }
            Kind::Double(a) => (a, true),
            Kind::Bounce(a) => (a, false),
        };
        let (message, whole) = match read_original(&self.d.mess(id), j.info.size) {
            Ok(x) => x,
            Err(e) => {
                exit::warn(&[
                    b"unable to read mess/",
                    id.as_bytes(),
                    b": ",
                    exit::errtext(&e).as_bytes(),
                ]);
                j.bounce_next = now + 60;
                return Sent::Later;
            }
        };
        let orig = bounce::Original {
            id,
            birth: j.info.birth,
            message: &message,
            whole,
        };
        let msg = bounce::build(&self.cfg, &to, double, &orig, rcpts, until, now);
        let sender: &[u8] = if double { bounce::DOUBLE_SENDER } else { b"" };
        let env = crate::queue::Envelope {
            sender: sender.to_vec(),
            recipients: vec![to.clone()],
        };
        let what: &[u8] = match (until, double) {
            (Some(_), _) => b"delay notice msg ",
            (None, true) => b"double bounce msg ",
            (None, false) => b"bounce msg ",
        };
        let unable = |t: &[u8], tail: &[u8]| {
            let kind = &what[..what.len() - 5];
            exit::warn(&[
                b"unable to queue the ",
                kind,
                b" of msg ",
                id.as_bytes(),
                b": ",
                t,
                tail,
            ]);
        };
        match crate::enqueue::Queue::submit(&msg, &env.encode()) {
            crate::enqueue::Outcome::Queued(q) => {
                log(&[what, id.as_bytes(), b" to <", &to, b"> qp ", &q]);
                Sent::Queued
            }
            crate::enqueue::Outcome::Perm(t) => {
                unable(&t, b"; discarding it");
                Sent::Dropped
            }
            crate::enqueue::Outcome::Temp(t) => {
                unable(&t, b"");
                j.bounce_next = now + 60;
                Sent::Later
            }
        }
    }

    /// Removes the jobs finish_job made ready, in one batch (one fsync).
    fn remove_finished(&mut self, now: u64) {
        let ids = std::mem::take(&mut self.removable);
        if ids.is_empty() {
            return;
        }
        let old = &self.old;
        let res = store::remove_jobs(&self.d, &ids, &|id| old.contains(id));
        for (id, r) in ids.iter().zip(res) {
            match r {
                Ok(()) => {
                    self.jobs.remove(id);
                    self.old.remove(id);
                    self.journal.dead += 1;
                    log(&[b"end msg ", id.as_bytes()]);
                }
                Err(e) => {
                    exit::warn(&[
                        b"unable to remove msg ",
                        id.as_bytes(),
                        b": ",
                        exit::errtext(&e).as_bytes(),
                    ]);
                    if let Some(j) = self.jobs.get_mut(id) {
                        j.bounce_next = now + 60;
                    }
                }
            }
        }
        self.compact(store::COMPACT_AT);
    }

    /// Makes pending recipients due now where `pick(job, rcpt index)`.
    fn retry(&mut self, pick: impl Fn(&Job, usize) -> bool) {
        for j in self.jobs.values_mut() {
            for i in 0..j.st.len() {
                if matches!(j.st[i], St::Pending(_)) && pick(j, i) {
                    j.st[i] = St::Pending(0);
                }
            }
        }
    }

    fn etrn(&mut self, dom: &[u8]) {
        let dom = dom.to_ascii_lowercase();
        log(&[b"retrying domain ", &dom, b" now"]);
        self.retry(|j, i| {
            j.info.rcpts[i].local.is_none() && domain_of(&j.info.rcpts[i].addr) == dom
        });
    }

    fn trigger_commands(&mut self) {
        // Only `E`domain LF lines mean something here; other bytes just wake us.
        loop {
            let Some(e) = memchr::memchr(b'E', &self.trig_buf) else {
                self.trig_buf.clear();
                return;
            };
            self.trig_buf.drain(..e);
            match memchr::memchr(b'\n', &self.trig_buf) {
                Some(nl) => {
                    let dom = self.trig_buf[1..nl].to_vec();
                    self.trig_buf.drain(..=nl);
                    if !dom.is_empty() && dom.len() < 256 {
                        self.etrn(&dom);
                    }
                }
                None => {
                    if self.trig_buf.len() > 300 {
                        self.trig_buf.clear();
                    }
                    return;
                }
            }
        }
    }

    fn ctl_commands(&mut self) {
        while let Some(nl) = memchr::memchr(b'\n', &self.ctl_buf) {
            let line: Vec<u8> = self.ctl_buf.drain(..=nl).collect();
            let line = &line[..line.len() - 1];
            let Some((&verb, arg)) = line.split_first() else {
                continue;
            };
            if verb == b'E' {
                self.etrn(arg);
                continue;
            }
            if verb == b'A' {
                log(&[b"retrying every message now"]);
                self.retry(|_, _| true);
                continue;
            }
            let ids: Vec<String> = if arg == b"*" {
                self.jobs.keys().cloned().collect()
            } else if self
                .jobs
                .contains_key(String::from_utf8_lossy(arg).as_ref())
            {
                vec![String::from_utf8_lossy(arg).into_owned()]
            } else {
                exit::warn(&[b"queue-ctl: no such message: ", arg]);
                continue;
            };
            for id in ids {
                self.ctl_one(verb, &id);
            }
        }
        if self.ctl_buf.len() > 4096 {
            self.ctl_buf.clear();
        }
    }

    fn ctl_one(&mut self, verb: u8, id: &str) {
        let path = self.d.state(id);
        let Some(j) = self.jobs.get_mut(id) else {
            return;
        };
        let rec = |r: Rec| {
            if let Err(e) = store::append(&path, &r, true) {
                exit::warn(&[
                    b"unable to record in state/",
                    id.as_bytes(),
                    b": ",
                    exit::errtext(&e).as_bytes(),
                ]);
            }
        };
        match verb {
            b'R' => {
                for s in j.st.iter_mut() {
                    if let St::Pending(_) = s {
                        *s = St::Pending(0);
                    }
                }
                log(&[b"retrying msg ", id.as_bytes(), b" now"]);
            }
            b'H' => {
                rec(Rec::Hold);
                j.held = true;
                log(&[b"holding msg ", id.as_bytes()]);
            }
            b'U' => {
                rec(Rec::Release);
                j.held = false;
                for s in j.st.iter_mut() {
                    if let St::Pending(_) = s {
                        *s = St::Pending(0);
                    }
                }
                log(&[b"releasing msg ", id.as_bytes()]);
            }
            b'X' | b'B' => {
                for i in 0..j.st.len() {
                    if let St::Pending(_) = j.st[i] {
                        if verb == b'X' {
                            rec(Rec::Removed(i));
                        } else {
                            let t = ADMIN_BOUNCE.to_vec();
                            rec(Rec::Failed(i, t.clone()));
                            j.fails.push(Failure {
                                addr: j.info.rcpts[i].addr.clone(),
                                text: t,
                            });
                        }
                        j.st[i] = St::Done;
                    }
                }
                j.doom = Some(verb);
                if verb == b'X' {
                    rec(Rec::Bounced);
                    j.bounced = true;
                }
                j.held = false;
                log(&[
                    if verb == b'X' {
                        b"deleting msg "
                    } else {
                        b"bouncing msg "
                    },
                    id.as_bytes(),
                ]);
            }
            _ => exit::warn(&[b"queue-ctl: unknown command"]),
        }
    }
}

/// Applies one state record to a job being recovered.
fn apply(j: &mut Job, r: Rec) {
    let n = j.st.len();
    let c = |j: &Job, i: usize| {
        if j.info.rcpts[i].local.is_some() {
            sched::LOCAL
        } else {
            sched::REMOTE
        }
    };
    match r {
        Rec::Done(i) | Rec::Removed(i) if i < n => j.st[i] = St::Done,
        Rec::Failed(i, t) if i < n => {
            j.st[i] = St::Done;
            j.fails.push(Failure {
                addr: j.info.rcpts[i].addr.clone(),
                text: t,
            });
        }
        Rec::Deferred(i, at, t) if i < n => {
            j.delays[i] = Some(t);
            if j.st[i] != St::Done {
                j.st[i] = St::Pending(sched::next_retry(j.info.birth, at, c(j, i)));
            }
        }
        Rec::Hold => j.held = true,
        Rec::Release => j.held = false,
        // The failures before it are bounced.
        Rec::Bounced => j.fails.clear(),
        Rec::Warned => j.warned = true,
        _ => {}
    }
}

/// The original for a bounce: the whole message, or its header when large.
fn read_original(p: &std::path::Path, size: u64) -> std::io::Result<(Vec<u8>, bool)> {
    use std::io::Read;
    if size <= bounce::ATTACH_MAX {
        return Ok((std::fs::read(p)?, true));
    }
    let mut b = Vec::new();
    std::fs::File::open(p)?.take(65536).read_to_end(&mut b)?;
    let h = bounce::header_of(&b).to_vec();
    Ok((h, false))
}

/// Turns remote-send's report (qmail-remote's format) into one
/// (K|Z|D, text) per recipient.
pub fn parse_remote(out: &[u8], n: usize, code: Option<i32>) -> Vec<(u8, Vec<u8>)> {
    let all = |l: u8, t: &[u8]| vec![(l, t.to_vec()); n];
    if code != Some(0) {
        return all(b'Z', b"Unable to run remote-send. (#4.3.0)");
    }
    let end = memchr::memrchr(0, out).map(|i| i + 1).unwrap_or(0);
    let recs: Vec<&[u8]> = out[..end]
        .split(|&c| c == 0)
        .filter(|r| !r.is_empty())
        .collect();
    let Some((last, rc)) = recs.split_last() else {
        return all(b'Z', b"remote-send gave no report. (#4.3.0)");
    };
    let (fl, ft) = (last[0], &last[1..]);
    if !matches!(fl, b'K' | b'Z' | b'D') {
        return all(b'Z', b"remote-send gave no final report. (#4.3.0)");
    }
    (0..n)
        .map(|i| match rc.get(i).and_then(|r| r.split_first()) {
            Some((b'r', _)) => (fl, ft.to_vec()),
            Some((b'h', t)) => (b'D', t.to_vec()),
            Some((b's', t)) => (b'Z', t.to_vec()),
            _ if fl == b'K' => (
                b'Z',
                b"remote-send gave no report for this recipient. (#4.3.0)".to_vec(),
            ),
            _ => (fl, ft.to_vec()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn remote_reports() {
        let r = parse_remote(b"r\0h1.2.3.4 does not like recipient.\nRemote host said: 550 no\0s451 later\0K1.2.3.4 accepted message.\0", 3, Some(0));
        assert_eq!(r[0], (b'K', b"1.2.3.4 accepted message.".to_vec()));
        assert_eq!(r[1].0, b'D');
        assert_eq!(r[2], (b'Z', b"451 later".to_vec()));
        let r = parse_remote(
            b"ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\0",
            2,
            Some(0),
        );
        assert!(r.iter().all(|x| x.0 == b'Z'));
        let r = parse_remote(b"DSorry, no host. (#5.1.2)\0", 1, Some(0));
        assert_eq!(r[0].0, b'D');
        assert!(parse_remote(b"", 1, Some(0))[0].0 == b'Z');
        assert!(parse_remote(b"K\0", 1, Some(1))[0].0 == b'Z');
        assert!(parse_remote(b"r\0Kok\0", 2, Some(0))[1].0 == b'Z');
    }
}
