//! queue-stat: the RFC 1566 counters after a known run of queue-run
//! (local and remote successes, a permanent and two temporary failures).

use crate::common::{assert_has, wait_until};
use crate::queuerun::{env, Q};

fn stat(q: &Q, args: &[&str]) -> String {
    q.output("queue-stat", args)
}

/// The sizes of the queued messages (as queue-run counts them) by
/// recipient count: (message A, message B).
fn sizes(q: &Q) -> (u64, u64) {
    let mut v: Vec<u64> = crate::common::files(&q.home.join("queue/mess"))
        .iter()
        .map(|f| {
            std::fs::metadata(q.home.join("queue/mess").join(f))
                .unwrap()
                .len()
        })
        .collect();
    v.sort();
    assert_eq!(v.len(), 2);
    (v[1], v[0])
}

#[test]
fn counters_after_a_known_run() {
    let mut q = Q::new("qstat");
    // Sender #@[] (a double bounce's): perm@'s failure, bounced at once
    // while soft@ is still deferred, is discarded and adds no message.
    let a = env(
        "#@[]",
        &[
            "u@mail.example.org",
            "perm@mail.example.org",
            "x@remote.example",
            "y@remote.example",
            "soft@other.example",
        ],
    );
    let body = format!("Subject: a\n\n{}\n", "x".repeat(500));
    assert_eq!(q.inject(body.as_bytes(), &a), Some(0));
    assert_eq!(
        q.inject(
            b"Subject: b\n\n",
            &env("s@sender.example", &["temp@mail.example.org"])
        ),
        Some(0)
    );
    // a forged submission without queue-inject's Received line: quarantined
    let drop = q.home.join("queue/drop");
    std::fs::write(drop.join("9.9.zz"), "Subject: forged\n\n").unwrap();
    std::fs::write(drop.join("9.9.zz.env"), env("s@x", &["u@mail.example.org"])).unwrap();
    // before queue-run: nothing counted, three submissions waiting
    let s = stat(&q, &[]);
    assert_has(&s, "all received_messages 0\n");
    assert_has(&s, "all unprocessed_messages 3\n");
    q.start(&[]);
    wait_until(15, "deliveries", || {
        q.locals().len() == 3 && q.remotes().len() == 2
    });
    assert_eq!(q.stop(), Some(0));
    let (sa, sb) = sizes(&q);
    let want = format!(
        "all received_messages 2\nall received_octets {ab}\nall received_recipients 6\n\
         all transmitted_messages 2\nall transmitted_octets {a2}\nall transmitted_recipients 3\n\
         all failed_recipients 1\nall deferred_recipients 2\n\
         all stored_messages 2\nall stored_octets {ab}\nall stored_recipients 2\n\
         all oldest_message_seconds AGE\nall rejected_messages 1\nall unprocessed_messages 0\n\
         local received_messages 2\nlocal received_octets {ab}\nlocal received_recipients 3\n\
         local transmitted_messages 1\nlocal transmitted_octets {a}\nlocal transmitted_recipients 1\n\
         local failed_recipients 1\nlocal deferred_recipients 1\n\
         local stored_messages 1\nlocal stored_octets {b}\nlocal stored_recipients 1\nlocal oldest_message_seconds AGE\n\
         remote received_messages 1\nremote received_octets {a}\nremote received_recipients 3\n\
         remote transmitted_messages 1\nremote transmitted_octets {a}\nremote transmitted_recipients 2\n\
         remote failed_recipients 0\nremote deferred_recipients 1\n\
         remote stored_messages 1\nremote stored_octets {a}\nremote stored_recipients 1\nremote oldest_message_seconds AGE\n",
        a = sa,
        b = sb,
        ab = sa + sb,
        a2 = 2 * sa
    );
    // ages depend on the clock: a few seconds
    let s = stat(&q, &[]);
    let masked: String = s
        .lines()
        .map(|l| match l.rsplit_once(' ') {
            Some((k, v)) if k.ends_with("oldest_message_seconds") => {
                assert!(v.parse::<u64>().unwrap() < 60, "{}", l);
                format!("{} AGE\n", k)
            }
            _ => format!("{}\n", l),
        })
        .collect();
    assert_eq!(masked, want);
    // the counters are queue-run's file; the Prometheus form for node_exporter
    let f = std::fs::read_to_string(q.home.join("queue/stats")).unwrap();
    assert!(
        f.starts_with("all received_messages 2\nall received_octets "),
        "{}",
        f
    );
    let p = stat(&q, &["-p"]);
    assert!(
        p.starts_with(
            "# TYPE pipemail_received_messages_total counter\n\
         pipemail_received_messages_total{channel=\"all\"} 2\n\
         pipemail_received_messages_total{channel=\"local\"} 2\n\
         pipemail_received_messages_total{channel=\"remote\"} 1\n"
        ),
        "{}",
        p
    );
    assert_has(
        &p,
        "# TYPE pipemail_stored_recipients gauge\npipemail_stored_recipients{channel=\"all\"} 2\n",
    );
    assert_has(&p, "pipemail_rejected_messages{channel=\"all\"} 1\n# TYPE pipemail_unprocessed_messages gauge\n");
    // usage
    let o = q.command("queue-stat", &["-x"], &[]).output().unwrap();
    assert_eq!(o.status.code(), Some(100));
}
