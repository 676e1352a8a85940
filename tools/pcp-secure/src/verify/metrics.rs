//! The live TLS figures of pmcd (`mmv.pcp_secure.pmcd`, libpcp_secure's
//! TLS metrics served by the mmv PMDA), read with pminfo when pmcd
//! publishes them: handshakes, failures by reason, open sessions and the
//! served certificate's remaining days.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Context, Report, EXPIRY_WARNING_DAYS};

/// The namespace pmcd's figures are under.
const NS: &str = "mmv.pcp_secure.pmcd";
/// How long pminfo may take.
const LIMIT: Duration = Duration::from_secs(15);

/// Adds the line about pmcd's live TLS figures.
pub(super) fn metrics(report: &mut Report, ctx: &Context) {
    let name = "TLS metrics (pmcd)";
    let host = &ctx.metrics_host;
    let text = match pminfo(host) {
        Ok(text) => text,
        Err(why) => {
            report.ok(
                name,
                format!("no live figures from pmcd on {host} ({why}); they need pmcd running with the library and the mmv PMDA"),
            );
            return;
        }
    };
    let figures = Figures::parse(&text);
    let Some(completed) = figures.number("handshakes.completed") else {
        report.ok(
            name,
            format!("pmcd on {host} publishes no TLS metrics ({NS} is empty: no mmv PMDA, no library preloaded, or PCP_SECURE_METRICS=0)"),
        );
        return;
    };
    let failed = figures.number("handshakes.failed").unwrap_or(0);
    let reasons: Vec<String> = figures
        .instances("handshakes.failures")
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(r, n)| format!("{r} {n}"))
        .collect();
    let mut detail = format!(
        "pmcd on {host}: {completed} handshake(s) completed, {failed} failed{}, {} resumed, {} session(s) open",
        if reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", reasons.join(", "))
        },
        figures.number("handshakes.resumed").unwrap_or(0),
        figures.number("sessions.open").unwrap_or(0),
    );
    let subject = figures.string("certificate.subject").unwrap_or_default();
    let left = figures.number("certificate.expires_in");
    if let (false, Some(left)) = (subject.is_empty(), left) {
        detail.push_str(&format!(
            "; serving \"{subject}\", which {}",
            if left < 0 {
                format!("expired {} day(s) ago", -left / 86_400)
            } else {
                format!("expires in {} day(s)", left / 86_400)
            }
        ));
        if left < EXPIRY_WARNING_DAYS * 86_400 {
            report.warn(
                name,
                detail,
                "renew the certificate pmcd serves (pmcd takes renewed files up without a restart)",
            );
            return;
        }
    }
    report.ok(name, detail);
}

/// `pminfo -h HOST -f mmv.pcp_secure.pmcd`'s output, or why there is none.
fn pminfo(host: &str) -> Result<String, String> {
    let mut child = Command::new("pminfo")
        .args(["-h", host, "-f", NS])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run pminfo: {e}"))?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() > LIMIT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "pminfo did not answer within {} s",
                    LIMIT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("pminfo: {e}")),
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("pminfo: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() || stdout.contains(NS) {
        Ok(stdout)
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(stderr
            .lines()
            .last()
            .unwrap_or("pminfo failed")
            .trim()
            .to_string())
    }
}

/// `pminfo -f` output, by metric.
struct Figures(Vec<(String, Vec<String>)>);

impl Figures {
    /// Splits the output into metrics and their value lines.
    fn parse(text: &str) -> Figures {
        let mut metrics: Vec<(String, Vec<String>)> = Vec::new();
        for line in text.lines() {
            if line.starts_with(NS) {
                metrics.push((line.trim().to_string(), Vec::new()));
            } else if let Some((_, values)) = metrics.last_mut() {
                if !line.trim().is_empty() {
                    values.push(line.trim().to_string());
                }
            }
        }
        Figures(metrics)
    }

    /// The value lines of `name` (under the namespace).
    fn lines(&self, name: &str) -> &[String] {
        let full = format!("{NS}.{name}");
        self.0
            .iter()
            .find(|(m, _)| *m == full)
            .map_or(&[], |(_, v)| v.as_slice())
    }

    /// The single value of `name`, as written.
    fn value(&self, name: &str) -> Option<String> {
        self.lines(name)
            .iter()
            .find_map(|l| l.strip_prefix("value "))
            .map(|v| v.trim().to_string())
    }

    /// The number `name` holds.
    fn number(&self, name: &str) -> Option<i64> {
        self.value(name)?.parse().ok()
    }

    /// The string `name` holds, without its quotes.
    fn string(&self, name: &str) -> Option<String> {
        let v = self.value(name)?;
        Some(v.trim_matches('"').to_string())
    }

    /// (instance, number) for each instance of `name`.
    fn instances(&self, name: &str) -> Vec<(String, i64)> {
        self.lines(name)
            .iter()
            .filter_map(|l| {
                let inst = l.split('"').nth(1)?;
                let n = l.rsplit("value ").next()?.trim().parse().ok()?;
                Some((inst.to_string(), n))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pminfo_output_is_read_by_metric() {
        let text = "\nmmv.pcp_secure.pmcd.handshakes.completed\n    value 12\n\n\
            mmv.pcp_secure.pmcd.handshakes.failures\n    inst [0 or \"untrusted_issuer\"] value 2\n    inst [1 or \"name_mismatch\"] value 0\n\n\
            mmv.pcp_secure.pmcd.certificate.subject\n    value \"O=x, CN=localhost\"\n";
        let f = Figures::parse(text);
        assert_eq!(f.number("handshakes.completed"), Some(12));
        assert_eq!(
            f.instances("handshakes.failures"),
            vec![("untrusted_issuer".into(), 2), ("name_mismatch".into(), 0)]
        );
        assert_eq!(
            f.string("certificate.subject").as_deref(),
            Some("O=x, CN=localhost")
        );
        assert_eq!(f.number("handshakes.failed"), None);
    }
}
