//! "This host": the addresses a delivery must never loop back to.
//!
//! The addresses of every interface (getifaddrs), all of 127.0.0.0/8, ::1,
//! 0.0.0.0 and :: (they all reach this host), plus the addresses listed in
//! control/moreipme (for NAT and load balancers), minus those listed in
//! control/notipme (so a test peer on 127.0.0.2 counts as another host).

use crate::control::{self, ControlError};
use std::net::IpAddr;

pub struct IpMe {
    me: Vec<IpAddr>,
    not: Vec<IpAddr>,
}

fn ip_list(name: &str) -> Result<Vec<IpAddr>, ControlError> {
    let mut v = Vec::new();
    for (n, l) in control::lines(name)?.unwrap_or_default().iter().enumerate() {
        let ip = std::str::from_utf8(l)
            .ok()
            .and_then(|s| s.parse::<IpAddr>().ok());
        match ip {
            Some(ip) => v.push(ip),
            None => {
                return Err(ControlError {
                    file: control::path(&format!("control/{}", name)),
                    line: n + 1,
                    what: format!("not an IP address: {}", String::from_utf8_lossy(l)),
                })
            }
        }
    }
    Ok(v)
}

impl IpMe {
    pub fn load() -> Result<IpMe, ControlError> {
        let mut me = crate::sys::net::interface_addrs();
        me.extend(ip_list("moreipme")?);
        Ok(IpMe {
            me,
            not: ip_list("notipme")?,
        })
    }

    pub fn new(me: Vec<IpAddr>, not: Vec<IpAddr>) -> IpMe {
        IpMe { me, not }
    }

    /// Whether `ip` is this host.
    pub fn is_me(&self, ip: IpAddr) -> bool {
        if self.not.contains(&ip) {
            return false;
        }
        ip.is_loopback() || ip.is_unspecified() || self.me.contains(&ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn loopback_is_me_unless_listed() {
        let m = IpMe::new(
            vec!["192.0.2.7".parse().unwrap()],
            vec!["127.0.0.2".parse().unwrap()],
        );
        assert!(m.is_me("127.0.0.1".parse().unwrap()));
        assert!(m.is_me("127.9.9.9".parse().unwrap()));
        assert!(m.is_me("::1".parse().unwrap()));
        assert!(m.is_me("192.0.2.7".parse().unwrap()));
        assert!(!m.is_me("127.0.0.2".parse().unwrap()));
        assert!(!m.is_me("192.0.2.8".parse().unwrap()));
        assert!(crate::sys::net::interface_addrs()
            .iter()
            .any(|a| a.is_loopback()));
    }
}
