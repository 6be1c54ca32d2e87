//! `plaudit`: the command-line edge. Parses arguments and hands over to the library; the only
//! place that uses `anyhow`.

mod data;
mod diff;
mod generate;
mod insights;
mod plugin;
mod score;
mod serve;
mod simulate;
mod source;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// See `plaudit_allocator`: mimalloc, freed memory returned to the OS after 100 ms.
#[global_allocator]
static ALLOCATOR: plaudit_allocator::Allocator = plaudit_allocator::Allocator;

#[derive(Parser, Debug)]
#[command(name = "plaudit", version, about = "Plaudit: an engagement-gamification engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Score a file of moments (JSON lines) and write the effects as JSON lines to stdout.
    Score {
        /// The organisation's rule set (TOML).
        #[arg(long)]
        rules: PathBuf,
        /// Moments file, one JSON record per line; `-` reads stdin.
        moments: PathBuf,
        /// Write the final profiles, leaderboards and challenges as one JSON document instead.
        #[arg(long)]
        summary: bool,
        /// Leaderboard rows per board in the summary.
        #[arg(long, default_value_t = 10)]
        top: usize,
        /// What to do with a bad line: stop (exit 1) or skip it and go on (reported on stderr).
        #[arg(long, value_enum, default_value_t = OnError::Stop)]
        on_error: OnError,
        /// Records scored per batch.
        #[arg(long, default_value_t = 1024)]
        batch: usize,
        /// A rule plugin (`.wasm`) to run after the native rules, named after its file; repeat
        /// for several. Its status (calls, failures and why, fuel) is reported on stderr.
        #[arg(long = "plugin", value_name = "PATH.wasm")]
        plugins: Vec<PathBuf>,
    },
    /// Generate a synthetic workload (profiles, then moments) as JSON lines on stdout.
    Gen {
        #[arg(long, default_value_t = 1000)]
        stakeholders: usize,
        #[arg(long, default_value_t = 10_000)]
        moments: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Days the moments spread over, from 2026-03-01.
        #[arg(long, default_value_t = 28)]
        days: u32,
    },
    /// Check a rule set and print what it defines, or every problem with its field path.
    Check {
        /// The rule set (TOML).
        rules: PathBuf,
    },
    /// What-if: score a moments file under the current rules and a candidate, and show what
    /// would change for people (points, badges, levels, ranks, challenge completions).
    ///
    /// Either over a moments file: `--rules CURRENT --candidate NEW MOMENTS`; or over an
    /// organisation's durable log, with the rule set it runs: `--data DIR --org ORG --rules NEW`
    /// (or `--candidate NEW`).
    Simulate {
        /// The rule set in force (TOML); with --data, the candidate if --candidate is not given.
        #[arg(long)]
        rules: Option<PathBuf>,
        /// The candidate rule set (TOML).
        #[arg(long)]
        candidate: Option<PathBuf>,
        /// The history to replay: a moments file (JSON lines); `-` reads stdin.
        moments: Option<PathBuf>,
        /// A data directory (see `import`): replay the organisation's log.
        #[arg(long, requires = "org", conflicts_with = "moments")]
        data: Option<PathBuf>,
        #[arg(long, requires = "data")]
        org: Option<String>,
        /// Print the whole diff as JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Stakeholders listed in the table.
        #[arg(long, default_value_t = 10)]
        top: usize,
        /// What applying the candidate to history would do: rebase (the candidate in force from
        /// the start) or additive (only what it would have given and was not).
        #[arg(long, default_value = "rebase")]
        mode: plaudit_core::application::Mode,
    },
    /// Apply the rule set in force (or --rules NEW, published first) to an organisation's
    /// history, in one of two modes: additive (award what it would have given and was not,
    /// take nothing back) or rebase (compensating entries, so that everything ends as a replay
    /// under it would leave it). Without --confirm, only prints the preview: the what-if diff.
    Apply {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        org: String,
        #[arg(long)]
        mode: plaudit_core::application::Mode,
        /// A rule set to publish first (TOML), if it differs from the one in force.
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Apply it; without, only preview it.
        #[arg(long)]
        confirm: bool,
        /// Print the preview as JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Stakeholders listed in the preview's table.
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
    /// Append moments to an organisation's durable log (in DIR), scoring them as they land.
    /// The first import of an organisation needs --rules; the rule set is kept in DIR.
    Import {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        org: String,
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Moments file, one JSON record per line; `-` reads stdin.
        moments: PathBuf,
        /// Records per durable batch (one group commit each).
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// Acknowledge each durable batch on stdout: `ack LINE`.
        #[arg(long)]
        ack: bool,
        /// Also take a snapshot every N records accepted (0: only at the end).
        #[arg(long, default_value_t = 0)]
        snapshot_every: u64,
    },
    /// Take a snapshot of an organisation, so that its next start replays only the log after it
    /// (`import` takes one when it is done; the server takes them as it goes).
    Snapshot {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        org: String,
    },
    /// Give an organisation a new API key (one created by `import` has none), printed once;
    /// only its SHA-256 is kept, and the old key stops working when a server next opens it.
    Key {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        org: String,
    },
    /// Serve the HTTP API over a data directory (see `import` for its layout).
    Serve {
        /// A TOML configuration file (data, listen, admin_key, limits...); see
        /// docs/guide.md (configuration). Environment variables (PLAUDIT_DATA, PLAUDIT_LISTEN, PLAUDIT_ADMIN_KEY)
        /// override it, and flags override both.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The data directory [default: data].
        #[arg(long)]
        data: Option<PathBuf>,
        /// Address to listen on (port 0: any free port, printed at start) [default: 127.0.0.1:8080].
        #[arg(long)]
        listen: Option<String>,
        /// On an empty data directory, create an organisation for each rule set in this file
        /// or directory and print its API key; the example plugins built in --demo-plugins go
        /// into `acme`.
        #[arg(long, value_name = "RULES", num_args = 0..=1, default_missing_value = "rules")]
        demo: Option<PathBuf>,
        /// Where --demo finds the example plugins (built by scripts/build-plugins.sh).
        #[arg(long, value_name = "DIR", default_value = "plugins/dist", conflicts_with = "no_demo_plugins")]
        demo_plugins: PathBuf,
        /// --demo without the example plugins.
        #[arg(long)]
        no_demo_plugins: bool,
    },
    /// Rebuild an organisation's state from its durable log and report the time it took.
    Replay {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        org: String,
        /// Also print the final profiles, leaderboards and challenges as JSON.
        #[arg(long)]
        summary: bool,
        /// Leaderboard rows per board in the summary.
        #[arg(long, default_value_t = 10)]
        top: usize,
        /// Replay every record of the log, ignoring the snapshot.
        #[arg(long)]
        from_start: bool,
    },
    /// What a community manager reads: activity per week, bridges between teams, champions,
    /// who went quiet, challenges over their windows, goals against targets.
    Insights {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        org: String,
        /// First week shown (a date, YYYY-MM-DD); default: the 12 weeks ending with `--to`.
        #[arg(long)]
        from: Option<String>,
        /// Last week shown (a date); default: the week of the latest moment.
        #[arg(long)]
        to: Option<String>,
        /// The week taken as the current one for bridges, champions and gone quiet (a date).
        #[arg(long)]
        week: Option<String>,
        /// Rows per list of people.
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Print one JSON document (the HTTP API's bodies) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Everything held about one stakeholder, as one JSON document on stdout: their profile and
    /// state, every record of the log naming them, every gain with what gave it.
    Export(Stakeholder),
    /// Erase one stakeholder (GDPR article 17): every record naming them rewritten to a random
    /// pseudonym, their scoped keys revoked, the store's files rewritten without them. Run with
    /// the server stopped (it holds the store); a running server erases with
    /// `DELETE /v1/orgs/{org}/stakeholders/{id}`.
    Erase(Stakeholder),
    /// Rule plugins (WebAssembly modules).
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

/// One stakeholder of an organisation in a data directory.
#[derive(clap::Args, Debug)]
struct Stakeholder {
    #[arg(long)]
    data: PathBuf,
    #[arg(long)]
    org: String,
    #[arg(long)]
    stakeholder: String,
}

#[derive(Subcommand, Debug)]
enum PluginCommand {
    /// Validate a plugin module as an upload would (size, imports, exports, manifest) and show
    /// its name, version, declared context, imports and exports, or say what is wrong with it.
    Check {
        /// The module (`.wasm`).
        module: PathBuf,
    },
    /// Start a plugin crate from the template: DIR/NAME with a handler, its tests and a
    /// manifest that builds with scripts/build-plugins.sh.
    New {
        /// The plugin's name (lowercase letters, digits and dashes).
        name: String,
        /// Where to create it; add it to that workspace's `members`.
        #[arg(long, default_value = "plugins")]
        dir: PathBuf,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum OnError {
    Stop,
    Skip,
}

fn main() -> ExitCode {
    plaudit_allocator::configure();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Score { rules, moments, summary, top, on_error, batch, plugins } => score::run(&score::Options {
            rules,
            moments,
            summary,
            top,
            skip_bad: on_error == OnError::Skip,
            batch: batch.max(1),
            plugins,
        }),
        Command::Gen { stakeholders, moments, seed, days } => generate::run(stakeholders, moments, seed, days),
        Command::Check { rules } => check(&rules),
        Command::Simulate { rules, candidate, moments, data, org, json, top, mode } => {
            simulate::dispatch(rules, candidate, moments, data.zip(org), json, top, mode)
        }
        Command::Apply { data, org, mode, rules, confirm, json, top } => {
            data::apply(&data::Options { data, org, rules, from_start: false }, mode, confirm, json, top)
        }
        Command::Import { data, org, rules, moments, batch, ack, snapshot_every } => {
            let o = data::Options { data, org, rules, from_start: false };
            data::import(&o, &moments, batch.max(1), ack, snapshot_every)
        }
        Command::Key { data, org } => data::key(&data, &org),
        Command::Snapshot { data, org } => data::snapshot(&data::Options { data, org, rules: None, from_start: false }),
        Command::Serve { config, data, listen, demo, demo_plugins, no_demo_plugins } => {
            let demo_plugins = (!no_demo_plugins).then_some(demo_plugins);
            serve::run(&serve::Options { config, data, listen, demo, demo_plugins })
        }
        Command::Replay { data, org, summary, top, from_start } => {
            data::replay(&data::Options { data, org, rules: None, from_start }, summary, top)
        }
        Command::Insights { data, org, from, to, week, limit, json } => insights::run(
            &data::Options { data, org, rules: None, from_start: false },
            &insights::Args { from, to, week, limit, json },
        ),
        Command::Export(Stakeholder { data, org, stakeholder }) => {
            data::export(&data::Options { data, org, rules: None, from_start: false }, &stakeholder)
        }
        Command::Erase(Stakeholder { data, org, stakeholder }) => {
            data::erase(&data::Options { data, org, rules: None, from_start: false }, &stakeholder)
        }
        Command::Plugin { command: PluginCommand::Check { module } } => plugin::check(&module),
        Command::Plugin { command: PluginCommand::New { name, dir } } => plugin::new(&name, &dir),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let mut vocab = plaudit_core::intern::Interner::new();
    match plaudit_core::ruleset::load(path, &mut vocab) {
        Ok((_, p)) => {
            println!(
                "{}: ok: organisation {:?} ({}), {} currencies, {} rules, {} metrics, {} streaks, {} badges, {} levels, {} challenges, {} leaderboards, {} goals",
                path.display(),
                p.org_id,
                p.timezone,
                p.currencies.len(),
                p.rules.len(),
                p.metrics.len(),
                p.streaks.len(),
                p.badges.len(),
                p.levels.as_ref().map_or(0, |l| l.steps.len()),
                p.challenges.len(),
                p.leaderboards.len(),
                p.goals.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(plaudit_core::ruleset::RuleSetError::Invalid { origin, problems }) => {
            for (path, message) in problems {
                eprintln!("{origin}: {path}: {message}");
            }
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
