//! Berth-only scenarios of the access-control path (issue 3):
//! - `auth-token`: `GetAuthorizationToken` (SigV4 verification, IAM authorization, token
//!   minting) over many connections for a fixed duration.
//! - `manifest-head-auth`: manifest `HEAD` by tag as an IAM user whose inline policy allows
//!   `ecr:BatchGetImage` on that one repository, as the account root, and against the same
//!   server build started with `[auth] anonymous = "all"` (no access control: the
//!   unauthenticated rate). The three modes run in interleaved slices so that drift in the
//!   machine's load hits them alike; `user_vs_anonymous` (rate ratio) and
//!   `user_vs_anonymous_cpu` (inverse ratio of server CPU per request) are the cost of
//!   authentication plus policy evaluation on the hot path (the target is ≥ 0.8).

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use serde_json::json;

use super::{push_tiny_image, Ctx};
use crate::auth::{basic_header, V2Login};
use crate::aws::AwsClient;
use crate::client::{BenchError, Registry};
use crate::procstat::server_cpu_seconds;
use crate::runner::{self, Tally};
use crate::stats::{Better, Report};
use crate::units::parse_duration;

#[derive(clap::Args)]
pub struct TokenArgs {
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Connections, one worker each.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

pub async fn token(ctx: &Ctx, a: &TokenArgs) -> Result<Report> {
    let aws = ctx.aws()?;
    aws.login_header()
        .await
        .context("first GetAuthorizationToken")?;
    let clients: Vec<AwsClient> = (0..a.concurrency).map(|_| aws.dedicated()).collect();
    let sampler = ctx.sampler();
    let (t, wall) = runner::timed(a.duration, a.concurrency, move |w, _, mut t| {
        let c = clients[w].clone();
        async move {
            t.time("req", async {
                c.login_header().await?;
                Ok(((), 0))
            })
            .await;
            t
        }
    })
    .await;
    let mut r = Report::new(
        "auth-token",
        json!({"duration_s": a.duration.as_secs_f64(), "concurrency": a.concurrency, "berth_only": true}),
    );
    r.proc_stats = sampler.finish().await;
    r.ops = Some(t.count("req"));
    r.metric(
        "req_per_s",
        t.count("req") as f64 / wall.as_secs_f64(),
        "req/s",
        Better::Higher,
    );
    let s = t.get("req").summary();
    r.latency("", &s);
    r.metric("max_ms", s.max_ms, "ms", Better::Lower);
    r.absorb(&t);
    Ok(r)
}

#[derive(clap::Args)]
pub struct HeadArgs {
    /// Measured time per mode, split into `--rounds` interleaved slices.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Connections per mode, one worker each.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Slices per mode; the order of the modes alternates between rounds.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// The same server build started with `[auth] anonymous = "all"`: the unauthenticated
    /// baseline. Without it only the user and root modes run.
    #[arg(long)]
    anonymous_registry: Option<String>,
    /// PID of that server, for its CPU per request.
    #[arg(long)]
    anonymous_server_pid: Option<u32>,
}

/// One way of sending the same `HEAD`: its connections, its server, what it measured.
struct Mode {
    name: &'static str,
    conns: Vec<Registry>,
    pid: Option<u32>,
    tally: Tally,
    wall: Duration,
    cpu_s: Option<f64>,
}

impl Mode {
    fn new(name: &'static str, reg: &Registry, concurrency: usize, pid: Option<u32>) -> Self {
        Mode {
            name,
            conns: (0..concurrency).map(|_| reg.dedicated()).collect(),
            pid,
            tally: Tally::default(),
            wall: Duration::ZERO,
            cpu_s: Some(0.0),
        }
    }

    /// One measured slice of `HEAD <repo>:latest` on every connection.
    async fn slice(&mut self, repo: &str, duration: Duration) {
        let conns = self.conns.clone();
        let repo = repo.to_string();
        let cpu0 = server_cpu_seconds(self.pid);
        let (t, wall) = runner::timed(duration, conns.len(), move |w, _, mut t| {
            let (reg, repo) = (conns[w].clone(), repo.clone());
            async move {
                t.time("req", async {
                    reg.head_manifest(&repo, "latest").await?;
                    Ok(((), 0))
                })
                .await;
                t
            }
        })
        .await;
        let cpu1 = server_cpu_seconds(self.pid);
        self.cpu_s = match (self.cpu_s, cpu0, cpu1) {
            (Some(acc), Some(a), Some(b)) => Some(acc + (b - a)),
            _ => None,
        };
        self.tally.merge(t);
        self.wall += wall;
    }

    /// Server CPU seconds per request, when the server's PID is known.
    fn cpu_per_req(&self) -> Option<f64> {
        let n = self.tally.count("req");
        self.cpu_s
            .filter(|_| self.pid.is_some() && n > 0)
            .map(|c| c / n as f64)
    }

    fn rate(&self) -> f64 {
        self.tally.count("req") as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// The inline policy of the measured user: log in, and pull from `repository_arn` only.
fn puller_policy(repository_arn: &str) -> serde_json::Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Login", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
            {"Sid": "Pull", "Effect": "Allow",
             "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
             "Resource": repository_arn},
        ],
    })
}

/// Creates the IAM user with [`puller_policy`] and returns a `/v2` client logged in as it,
/// after checking that the policy is really evaluated: pull allowed on `repo`, denied (403)
/// on `other`.
async fn policy_user(ctx: &Ctx, repo: &str, other: &str) -> Result<Registry> {
    let aws = ctx.aws()?;
    let account = aws.account_id().await.context("sts:GetCallerIdentity")?;
    let arn = format!("arn:aws:ecr:{}:{account}:repository/{repo}", ctx.region);
    let name = format!("bench-puller-{:08x}", rand::random::<u32>());
    let key = aws
        .create_user_with_policy(&name, &puller_policy(&arn))
        .await
        .with_context(|| format!("creating IAM user {name}"))?;
    let header = match ctx.v2_login {
        V2Login::Token => AwsClient::new(ctx.reg.clone(), key, &ctx.region)?
            .login_header()
            .await
            .with_context(|| format!("GetAuthorizationToken as {name}"))?,
        V2Login::Key => basic_header(&key.id, &key.secret),
        V2Login::None => return Err(anyhow!("manifest-head-auth needs --v2-login token or key")),
    };
    let reg = ctx.reg.with_auth(Some(&header))?;
    reg.head_manifest(repo, "latest")
        .await
        .with_context(|| format!("HEAD {repo} as {name}"))?;
    match reg.head_manifest(other, "latest").await {
        Err(e) if is_status(&e, 403) => Ok(reg),
        Err(e) => Err(e.context(format!("HEAD {other} as {name}: expected 403"))),
        Ok(()) => Err(BenchError::Verify(format!(
            "{name} may read {other}, which its policy does not allow: policies are not evaluated"
        ))
        .into()),
    }
}

fn is_status(e: &anyhow::Error, status: u16) -> bool {
    matches!(e.downcast_ref::<BenchError>(), Some(BenchError::Status { status: s, .. }) if *s == status)
}

pub async fn head(ctx: &Ctx, a: &HeadArgs) -> Result<Report> {
    let repo = ctx.repo("hot-auth");
    let other = ctx.repo("hot-auth-other");
    push_tiny_image(&ctx.reg, &repo, "latest").await?;
    push_tiny_image(&ctx.reg, &other, "latest").await?;
    let user = policy_user(ctx, &repo, &other).await?;
    let mut modes = Vec::new();
    if let Some(url) = &a.anonymous_registry {
        let anon = Registry::new(url, ctx.timeout)?;
        anon.check_login()
            .await
            .with_context(|| format!("{url} must allow GET /v2/ without credentials"))?;
        push_tiny_image(&anon, &repo, "latest").await?;
        modes.push(Mode::new(
            "anonymous",
            &anon,
            a.concurrency,
            a.anonymous_server_pid,
        ));
    }
    modes.push(Mode::new("user", &user, a.concurrency, ctx.server_pid));
    modes.push(Mode::new("root", &ctx.reg, a.concurrency, ctx.server_pid));

    let rounds = a.rounds.max(1);
    let slice = a.duration / rounds as u32;
    let bench_cpu0 = crate::procstat::cpu_seconds("self");
    for round in 0..rounds {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..modes.len()).collect()
        } else {
            (0..modes.len()).rev().collect()
        };
        for i in order {
            modes[i].slice(&repo, slice).await;
        }
    }
    let bench_cpu = crate::procstat::cpu_seconds("self")
        .zip(bench_cpu0)
        .map(|(b, a)| b - a);

    let mut r = Report::new(
        "manifest-head-auth",
        json!({"duration_s": a.duration.as_secs_f64(), "concurrency": a.concurrency,
               "rounds": rounds, "berth_only": true}),
    );
    for m in &modes {
        r.metric(
            format!("{}_req_per_s", m.name),
            m.rate(),
            "req/s",
            Better::Higher,
        );
    }
    if let Some(anon) = modes.iter().find(|m| m.name == "anonymous") {
        for m in modes.iter().filter(|m| m.name != "anonymous") {
            r.metric(
                format!("{}_vs_anonymous", m.name),
                m.rate() / anon.rate(),
                "x",
                Better::Higher,
            );
            // The same comparison in server CPU per request, which a client-bound or noisy
            // machine disturbs less than the rates.
            if let (Some(a), Some(b)) = (anon.cpu_per_req(), m.cpu_per_req()) {
                r.metric(
                    format!("{}_vs_anonymous_cpu", m.name),
                    a / b,
                    "x",
                    Better::Higher,
                );
            }
        }
    }
    for m in &modes {
        let s = m.tally.get("req").summary();
        r.latency(&format!("{}_", m.name), &s);
        if let Some(cpu) = m.cpu_per_req() {
            r.metric(
                format!("{}_server_cpu_us_per_req", m.name),
                cpu * 1e6,
                "µs",
                Better::Lower,
            );
        }
        r.absorb(&m.tally);
    }
    if let Some(c) = bench_cpu {
        r.metric("bench_cpu_s", c, "s", Better::None);
    }
    Ok(r)
}
