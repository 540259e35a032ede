//! What the policies alone say about one flow, evaluated the way Felix evaluates them, with no
//! dataplane involved: egress at the source endpoint, ingress at the destination endpoint.
//!
//! For each direction: the enforced policies that select the endpoint and govern that
//! direction (preDNAT and doNotTrack ones excepted, as Felix renders those elsewhere), grouped
//! in tiers and ordered as [`crate::calico::order::order_policies`] orders them for the
//! model's Calico version; then each policy's rules in order. A matching Allow or Deny decides,
//! Pass jumps to the next tier, Log goes on. A tier whose policies all fall through applies
//! its default action (Deny, or Pass to the next tier). When no tier holds a policy for the
//! direction, or the last one passed, the endpoint's profiles decide; none matching is a deny.
//! Each decision is reported as a [`PolicyHit`] in the vocabulary of Calico flow logs
//! (`0|tier|ns/tier.policy|allow|0`).
//!
//! A rule is matched on protocol, notProtocol, ipVersion, ports and notPorts (ranges, named
//! ports resolved on the endpoint that owns the port), selectors (evaluated, like Felix's IP
//! sets, on the endpoint and the network sets that hold the IP: a selector never matches an IP
//! outside the bundle), notSelector, nets and notNets. What cannot be known offline is
//! *Unknown*: ICMP type/code when the flow is ICMP, `http` matches, `services` matches,
//! source ports, a destination port not given, service-account matches when the bundle lacks
//! the service account's labels, a profile the bundle does not hold. An Unknown rule only
//! makes the verdict Unknown when matching and not matching it would end differently.
//!
//! Not here: conntrack (established flows pass before any policy), failsafe ports, host
//! endpoints' preDNAT/untracked/forward chains, the dataplane itself (see the dataplane
//! simulation of the trace).

use std::cell::Cell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::OnceLock;

use serde::Serialize;

use super::flow::{
    Flow, FlowEnd, PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP, PROTO_TCP, PROTO_UDP, PROTO_UDPLITE,
    has_ports, protocol_name, protocol_number,
};
use crate::calico::labels::{NAMESPACE_PROFILE_PREFIX, SERVICE_ACCOUNT_PROFILE_PREFIX};
use crate::calico::names::{Direction, PolicyKind};
use crate::calico::order::{self, SortablePolicy, SortableTier, TierDefaultAction};
use crate::model::endpoints::parse_net;
use crate::model::{Loc, Model, Policy, PolicyRule, RuleSide};
use crate::parse::resources::{self, Port};
use ipnet::IpNet;

/// The tier name flow logs give profiles.
pub const PROFILE_TIER: &str = "__PROFILE__";
/// The policy name flow logs give "nothing matched".
pub const NO_MATCH: &str = "__NO_MATCH__";
/// The profile Calico gives host endpoints that should allow everything.
const DEFAULT_ALLOW_PROFILE: &str = "projectcalico-default-allow";
/// How many undecidable rules may be explored both ways before giving up.
const BRANCH_BUDGET: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allow,
    Deny,
    Unknown,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::Unknown => "unknown",
        }
    }
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HitAction {
    /// A policy rule allowed the flow.
    Allow,
    /// A policy rule denied it.
    Deny,
    /// A policy rule passed it to the next tier.
    Pass,
    /// A Log rule matched; evaluation went on.
    Log,
    /// No policy of the tier decided; the tier's default action (Deny) applied.
    EotDeny,
    /// No policy of the tier decided; the tier's default action (Pass) applied.
    EotPass,
    ProfileAllow,
    ProfileDeny,
    /// A profile rule passed: the next profile is consulted.
    ProfilePass,
    /// No profile allowed the flow ("Drop if no profiles matched").
    NoProfileDeny,
    /// A rule could not be evaluated offline and the outcome depends on it.
    Unknown,
}

impl HitAction {
    pub fn as_str(self) -> &'static str {
        match self {
            HitAction::Allow => "allow",
            HitAction::Deny => "deny",
            HitAction::Pass => "pass",
            HitAction::Log => "log",
            HitAction::EotDeny => "eot-deny",
            HitAction::EotPass => "eot-pass",
            HitAction::ProfileAllow => "profile-allow",
            HitAction::ProfileDeny => "profile-deny",
            HitAction::ProfilePass => "profile-pass",
            HitAction::NoProfileDeny => "no-profile-deny",
            HitAction::Unknown => "unknown",
        }
    }

    /// The action word of a flow log's policy string.
    pub fn flow_log_action(self) -> &'static str {
        match self {
            HitAction::Allow | HitAction::ProfileAllow => "allow",
            HitAction::Deny
            | HitAction::EotDeny
            | HitAction::ProfileDeny
            | HitAction::NoProfileDeny => "deny",
            HitAction::Pass | HitAction::EotPass | HitAction::ProfilePass => "pass",
            HitAction::Log => "log",
            HitAction::Unknown => "unknown",
        }
    }

    /// Whether Felix's flow logs list such a hit (Log rules and our own Unknown are not).
    pub fn in_flow_log(self) -> bool {
        !matches!(self, HitAction::Log | HitAction::Unknown)
    }

    /// Whether the hit ends evaluation in its direction.
    pub fn decides(self) -> bool {
        !matches!(
            self,
            HitAction::Pass | HitAction::Log | HitAction::EotPass | HitAction::ProfilePass
        )
    }
}

/// One step of a direction's evaluation, as a flow log's `enforced_policies` entry names it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyHit {
    /// Position in the flow log's policy list (one entry per tier traversed, then the
    /// profile). Log steps carry the index of the entry that follows them.
    pub index: usize,
    /// Tier name, or `__PROFILE__`.
    pub tier: String,
    /// The policy's display name (`demo/allow-to-backend`), or the profile name.
    pub policy: String,
    /// The name flow logs use: `ns/tier.name`, `tier.name`, `ns/knp.default.name`,
    /// `__PROFILE__.kns.ns`, `__PROFILE__.__NO_MATCH__`.
    pub flow_log_name: String,
    pub action: HitAction,
    /// Rule index within the direction; `None` for end-of-tier and no-profile steps.
    pub rule: Option<usize>,
    /// 1-based line of the rule in `path`.
    pub rule_line: Option<usize>,
    /// Artifact holding the policy, tier or profile.
    pub path: Option<String>,
    /// Line of the policy, tier or profile object.
    pub line: Option<usize>,
    pub note: Option<String>,
}

impl PolicyHit {
    /// `index|tier|name|action|rule`, rule `-1` for an end-of-tier action, as Calico's flow
    /// logs write `enforced_policies`.
    pub fn to_flow_log(&self) -> String {
        let rule = match self.action {
            HitAction::EotDeny | HitAction::EotPass => "-1".to_string(),
            _ => self.rule.unwrap_or(0).to_string(),
        };
        format!(
            "{}|{}|{}|{}|{rule}",
            self.index,
            self.tier,
            self.flow_log_name,
            self.action.flow_log_action()
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleOutcome {
    Match,
    NoMatch,
    Unknown,
}

/// One rule looked at, whether it matched, and why not.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleCheck {
    pub tier: String,
    pub policy: String,
    pub rule: usize,
    pub rule_line: Option<usize>,
    /// The rule's action as written.
    pub action: String,
    pub outcome: RuleOutcome,
    /// For no-match and unknown: the first field that decided it.
    pub reason: Option<String>,
}

/// The verdict of one direction at one endpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DirectionResult {
    pub direction: Direction,
    /// The endpoint policed (`namespace/pod` or host endpoint name).
    pub endpoint: Option<String>,
    /// False when this end is not a Calico endpoint: Calico does not police it, and the
    /// verdict is Allow as far as Calico is concerned.
    pub policed: bool,
    pub verdict: Verdict,
    pub steps: Vec<PolicyHit>,
    /// The step that decided (allow, deny, end-of-tier, profile, unknown).
    pub deciding: Option<PolicyHit>,
    /// Every rule evaluated on the way, in order.
    pub checked: Vec<RuleCheck>,
    /// Staged policies that select the endpoint for this direction: not enforced.
    pub staged: Vec<String>,
    pub notes: Vec<String>,
}

impl DirectionResult {
    /// The `enforced_policies` strings Felix would log for this direction.
    pub fn flow_log(&self) -> Vec<String> {
        self.steps
            .iter()
            .filter(|s| s.action.in_flow_log())
            .map(PolicyHit::to_flow_log)
            .collect()
    }

    /// One line: what decided and where.
    pub fn explain(&self) -> String {
        let dir = self.direction.word();
        let Some(ep) = &self.endpoint else {
            return format!("{dir}: not a Calico endpoint, not policed by Calico");
        };
        let Some(h) = &self.deciding else {
            return format!("{dir} at {ep}: {}", self.verdict.as_str());
        };
        let rule = h.rule.map(|r| format!(" rule {r}")).unwrap_or_default();
        match h.action {
            HitAction::Allow | HitAction::Deny => format!(
                "{dir} at {ep}: {} by {}{rule} (tier {})",
                past(h.action),
                h.policy,
                h.tier
            ),
            HitAction::EotDeny => format!(
                "{dir} at {ep}: denied at the end of tier {} (no rule of its policies matched)",
                h.tier
            ),
            HitAction::ProfileAllow | HitAction::ProfileDeny => format!(
                "{dir} at {ep}: {} by profile {}{rule}",
                past(h.action),
                h.policy
            ),
            HitAction::NoProfileDeny => format!("{dir} at {ep}: denied, no profile matched"),
            _ => format!(
                "{dir} at {ep}: unknown ({})",
                h.note.as_deref().unwrap_or("a rule could not be evaluated")
            ),
        }
    }
}

fn past(a: HitAction) -> &'static str {
    match a.flow_log_action() {
        "allow" => "allowed",
        "deny" => "denied",
        _ => "decided",
    }
}

/// The intent verdict of a flow: Allow only when both directions allow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntentVerdict {
    pub verdict: Verdict,
    pub egress: DirectionResult,
    pub ingress: DirectionResult,
}

impl IntentVerdict {
    /// One line per direction.
    pub fn explain(&self) -> String {
        format!("{}; {}", self.egress.explain(), self.ingress.explain())
    }
}

/// Evaluate both directions of a flow.
pub fn evaluate(model: &Model<'_>, flow: &Flow) -> IntentVerdict {
    evaluate_cached(model, flow, &PlanCache::default())
}

/// [`evaluate`], reusing the plans of endpoints met before.
pub fn evaluate_cached<'b>(model: &Model<'b>, flow: &Flow, cache: &PlanCache<'b>) -> IntentVerdict {
    let egress = direction_cached(model, flow, Direction::Egress, cache);
    let ingress = direction_cached(model, flow, Direction::Ingress, cache);
    let verdict = match (egress.verdict, ingress.verdict) {
        (Verdict::Deny, _) | (_, Verdict::Deny) => Verdict::Deny,
        (Verdict::Allow, Verdict::Allow) => Verdict::Allow,
        _ => Verdict::Unknown,
    };
    IntentVerdict {
        verdict,
        egress,
        ingress,
    }
}

/// Evaluate one direction: egress at the source endpoint, ingress at the destination one.
pub fn evaluate_direction(model: &Model<'_>, flow: &Flow, dir: Direction) -> DirectionResult {
    direction_cached(model, flow, dir, &PlanCache::default())
}

fn direction_cached<'b>(
    model: &Model<'b>,
    flow: &Flow,
    dir: Direction,
    cache: &PlanCache<'b>,
) -> DirectionResult {
    let end = match dir {
        Direction::Egress => &flow.src,
        Direction::Ingress => &flow.dst,
    };
    let Some(ei) = end.endpoint else {
        return DirectionResult {
            direction: dir,
            endpoint: None,
            policed: false,
            verdict: Verdict::Allow,
            steps: Vec::new(),
            deciding: None,
            checked: Vec::new(),
            staged: Vec::new(),
            notes: vec![format!(
                "{} is not a Calico endpoint: Calico does not police its {}",
                end.label,
                dir.word()
            )],
        };
    };
    let plan = cache.plan(model, ei, dir);
    let ev = Eval {
        model,
        cache,
        flow,
        dir,
        ep: ei,
        plan,
        budget: Cell::new(BRANCH_BUDGET),
    };
    let mut acc = ev.run(
        Pos::Tier { t: 0, p: 0, r: 0 },
        Acc {
            verdict: Verdict::Unknown,
            steps: Vec::new(),
            checked: Vec::new(),
            notes: ev.plan.notes.clone(),
        },
    );
    let mut n = 0;
    for s in &mut acc.steps {
        s.index = n;
        if s.action.in_flow_log() {
            n += 1;
        }
    }
    let deciding = acc.steps.iter().rev().find(|s| s.action.decides()).cloned();
    DirectionResult {
        direction: dir,
        endpoint: Some(model.endpoints[ei].key.clone()),
        policed: true,
        verdict: acc.verdict,
        steps: acc.steps,
        deciding,
        checked: acc.checked,
        staged: ev.plan.staged.clone(),
        notes: acc.notes,
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

/// Kleene truth of a rule (or of one of its fields) for the flow.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tri {
    Yes,
    No(String),
    Unknown(String),
}

impl Tri {
    /// All must hold: any No decides, else any Unknown, else Yes.
    fn all(parts: Vec<Tri>) -> Tri {
        if let Some(no) = parts.iter().find(|t| matches!(t, Tri::No(_))) {
            return no.clone();
        }
        parts
            .into_iter()
            .find(|t| matches!(t, Tri::Unknown(_)))
            .unwrap_or(Tri::Yes)
    }
}

/// Where evaluation stands: a rule of a policy of a tier, or a rule of a profile.
#[derive(Debug, Clone, Copy)]
enum Pos {
    Tier { t: usize, p: usize, r: usize },
    Profile { k: usize, r: usize },
}

#[derive(Debug, Clone)]
struct Acc {
    verdict: Verdict,
    steps: Vec<PolicyHit>,
    checked: Vec<RuleCheck>,
    notes: Vec<String>,
}

struct TierPlan {
    tier: SortableTier,
    loc: Option<Loc>,
    /// Policy indexes, in Felix's order.
    policies: Vec<usize>,
}

enum ProfileRules<'b> {
    /// Rules from the bundle's Profile object, converted, with the raw rule and compiled.
    Rules(Vec<(PolicyRule, &'b resources::Rule, Compiled)>),
    /// A profile Calico generates to allow everything (`kns.*`, the default-allow profile).
    AllowAll(&'static str),
    /// Known to carry no rules (`ksa.*` profiles carry labels only).
    NoRules,
    /// Named by the endpoint but not in the bundle.
    Missing,
}

struct ProfilePlan<'b> {
    name: String,
    loc: Option<Loc>,
    rules: ProfileRules<'b>,
}

enum Act {
    Allow,
    Deny,
    Pass,
    Log,
    Other(String),
}

fn act(action: &str) -> Act {
    match action.to_ascii_lowercase().as_str() {
        "allow" => Act::Allow,
        "deny" => Act::Deny,
        "pass" | "next-tier" => Act::Pass,
        "log" => Act::Log,
        _ => Act::Other(action.to_string()),
    }
}

/// What applies to one endpoint in one direction, whatever the flow: the policies in Felix's
/// order, by tier, then the profiles.
pub struct Plan<'b> {
    tiers: Vec<TierPlan>,
    profiles: Vec<ProfilePlan<'b>>,
    staged: Vec<String>,
    notes: Vec<String>,
}

/// What evaluations against one model share, each part computed once on first use: the plan
/// of each endpoint and direction (evaluating many flows between the same endpoints, as for a
/// conntrack table, orders their policies once), each policy's source resource, and each
/// policy's rules compiled for [`decide_direction`]. It may be shared by threads.
#[derive(Default)]
pub struct PlanCache<'b> {
    /// By [`slot`] of endpoint and direction.
    plans: OnceLock<Vec<OnceLock<Plan<'b>>>>,
    /// Profile resources by name (index into `Resources::profiles`).
    profiles: OnceLock<HashMap<&'b str, usize>>,
    /// The Calico resource each policy came from, by policy index.
    raw: OnceLock<Vec<Option<&'b resources::CalicoPolicy>>>,
    /// By [`slot`] of policy and direction.
    compiled: OnceLock<Vec<OnceLock<CompiledRules>>>,
    tiers: OnceLock<Vec<SortableTier>>,
    /// Staged policies, ascending.
    staged: OnceLock<Vec<usize>>,
}

/// A policy's rules in one direction: index into `Policy::rules`, compiled.
type CompiledRules = Vec<(usize, Compiled)>;

/// Index of an (item, direction) pair in the cache's per-direction tables.
fn slot(i: usize, dir: Direction) -> usize {
    i * 2
        + match dir {
            Direction::Ingress => 0,
            Direction::Egress => 1,
        }
}

fn table<T>(n: usize) -> Vec<OnceLock<T>> {
    (0..n).map(|_| OnceLock::new()).collect()
}

impl<'b> PlanCache<'b> {
    fn plan(&self, model: &Model<'b>, ep: usize, dir: Direction) -> &Plan<'b> {
        let plans = self.plans.get_or_init(|| table(model.endpoints.len() * 2));
        plans[slot(ep, dir)].get_or_init(|| Plan::new(model, dir, ep, self))
    }

    fn profiles(&self, model: &Model<'b>) -> &HashMap<&'b str, usize> {
        self.profiles.get_or_init(|| {
            let mut by_name = HashMap::new();
            for (i, p) in model.resources.profiles.iter().enumerate() {
                // The first of duplicate names wins, as a scan would find it.
                by_name.entry(p.item.meta.name.as_str()).or_insert(i);
            }
            by_name
        })
    }

    /// The Calico policy a model policy came from, for the fields the model does not carry
    /// (notProtocol, icmp, http, serviceAccounts).
    fn raw_policy(&self, model: &Model<'b>, pi: usize) -> Option<&'b resources::CalicoPolicy> {
        let raw = self.raw.get_or_init(|| {
            let r = &model.resources;
            let index = |list: &[crate::model::Sourced<'b, resources::CalicoPolicy>]| {
                let mut by_loc: HashMap<(&'b str, usize), &'b resources::CalicoPolicy> =
                    HashMap::new();
                for s in list {
                    // The first at a location wins, as a scan would find it.
                    by_loc.entry((s.path, s.item.meta.line)).or_insert(s.item);
                }
                by_loc
            };
            let lists = [
                index(&r.network_policies),
                index(&r.global_network_policies),
                index(&r.staged_network_policies),
                index(&r.staged_global_network_policies),
            ];
            model
                .policies
                .iter()
                .map(|p| {
                    let list = match p.kind() {
                        PolicyKind::NetworkPolicy => &lists[0],
                        PolicyKind::GlobalNetworkPolicy => &lists[1],
                        PolicyKind::StagedNetworkPolicy => &lists[2],
                        PolicyKind::StagedGlobalNetworkPolicy => &lists[3],
                        _ => return None,
                    };
                    list.get(&(p.loc.path.as_str(), p.loc.line)).copied()
                })
                .collect()
        });
        raw.get(pi).copied().flatten()
    }

    /// The Calico rule a model rule came from.
    fn raw_rule(
        &self,
        model: &Model<'b>,
        pi: usize,
        rule: &PolicyRule,
    ) -> Option<&'b resources::Rule> {
        let item = self.raw_policy(model, pi)?;
        let rules = match rule.direction {
            Direction::Ingress => &item.spec.ingress,
            Direction::Egress => &item.spec.egress,
        };
        rules.get(rule.index)
    }

    /// A policy's rules in one direction, in order: index into `Policy::rules`, compiled.
    fn compiled(&self, model: &Model<'b>, pi: usize, dir: Direction) -> &[(usize, Compiled)] {
        let all = self
            .compiled
            .get_or_init(|| table(model.policies.len() * 2));
        all[slot(pi, dir)].get_or_init(|| {
            model.policies[pi]
                .rules
                .iter()
                .enumerate()
                .filter(|(_, r)| r.direction == dir)
                .map(|(i, r)| (i, Compiled::new(r, self.raw_rule(model, pi, r))))
                .collect()
        })
    }

    fn tiers(&self, model: &Model<'b>) -> &[SortableTier] {
        self.tiers.get_or_init(|| model.sortable_tiers())
    }

    fn staged(&self, model: &Model<'b>) -> &[usize] {
        self.staged.get_or_init(|| {
            (0..model.policies.len())
                .filter(|&i| model.policies[i].staged)
                .collect()
        })
    }
}

struct Eval<'a, 'b> {
    model: &'a Model<'b>,
    cache: &'a PlanCache<'b>,
    flow: &'a Flow,
    dir: Direction,
    ep: usize,
    plan: &'a Plan<'b>,
    budget: Cell<usize>,
}

impl<'b> Plan<'b> {
    fn new(model: &Model<'b>, dir: Direction, ep: usize, cache: &PlanCache<'b>) -> Self {
        let endpoint = &model.endpoints[ep];
        let mut notes = Vec::new();
        let mut staged = Vec::new();
        let mut applying = Vec::new();
        // Only policies that select the endpoint, and staged ones, can say anything here;
        // both lists are ascending, so the merge keeps the order of a scan of every policy.
        let mut candidates: Vec<usize> = model.endpoint_policies[ep]
            .iter()
            .chain(cache.staged(model))
            .copied()
            .collect();
        candidates.sort_unstable();
        candidates.dedup();
        for pi in candidates {
            let p = &model.policies[pi];
            if !p.types.governs(dir) {
                continue;
            }
            if p.staged {
                let selects = match &p.selector {
                    Ok(sel) => sel.evaluate(&endpoint.labels),
                    Err(_) => false,
                };
                if selects {
                    staged.push(format!(
                        "{} (tier {}): staged: not enforced",
                        p.display, p.tier
                    ));
                }
                continue;
            }
            if model.endpoint_policies[ep].binary_search(&pi).is_err() {
                continue;
            }
            if !p.enforced() {
                let fields: Vec<&str> = p.invalid.iter().map(|i| i.field.as_str()).collect();
                notes.push(format!(
                    "{} selects {} but Felix drops it: invalid selector in {}",
                    p.display,
                    endpoint.key,
                    fields.join(", ")
                ));
                continue;
            }
            if p.pre_dnat || p.do_not_track {
                notes.push(format!(
                    "{} is {}: Felix applies it only in host endpoints' {} chains; not evaluated here",
                    p.display,
                    if p.pre_dnat { "preDNAT" } else { "doNotTrack" },
                    if p.pre_dnat { "mangle" } else { "raw" }
                ));
                continue;
            }
            applying.push(pi);
        }
        let sortable: Vec<SortablePolicy> = applying
            .iter()
            .map(|&pi| {
                let p = &model.policies[pi];
                SortablePolicy::new(p.key.clone(), p.order, p.types, &p.selector_raw)
            })
            .collect();
        let ordered = order::order_policies(cache.tiers(model), &sortable, model.calico_version());
        let mut tiers = Vec::new();
        for t in ordered {
            let policies: Vec<usize> = t
                .for_direction(dir)
                .into_iter()
                .filter_map(|sp| {
                    applying
                        .iter()
                        .copied()
                        .find(|&pi| model.policies[pi].key == sp.key)
                })
                .collect();
            if policies.is_empty() {
                continue;
            }
            if !t.tier.valid {
                notes.push(format!(
                    "tier {} has no Tier resource in the bundle: Felix orders it last and denies at its end",
                    t.tier.name
                ));
            }
            let loc = model
                .resources
                .tiers
                .iter()
                .find(|r| r.item.meta.name == t.tier.name)
                .map(|r| r.loc());
            tiers.push(TierPlan {
                tier: t.tier,
                loc,
                policies,
            });
        }
        let profiles = endpoint
            .profiles
            .iter()
            .map(|name| profile_plan(model, cache.profiles(model), name, dir))
            .collect();
        Plan {
            tiers,
            profiles,
            staged,
            notes,
        }
    }
}

impl<'a, 'b> Eval<'a, 'b> {
    /// Evaluate from `pos` to a verdict.
    fn run(&self, mut pos: Pos, mut acc: Acc) -> Acc {
        loop {
            let next = match pos {
                Pos::Tier { t, p, r } => self.tier_step(t, p, r, acc),
                Pos::Profile { k, r } => self.profile_step(k, r, acc),
            };
            match next {
                Next::Go(p, a) => {
                    pos = p;
                    acc = a;
                }
                Next::Done(a) => return a,
            }
        }
    }

    /// Rule `r` of policy `p` of tier `t`, or the end of that policy or tier.
    fn tier_step(&self, t: usize, p: usize, r: usize, mut acc: Acc) -> Next {
        let next_tier = Pos::Tier {
            t: t + 1,
            p: 0,
            r: 0,
        };
        let Some(plan) = self.plan.tiers.get(t) else {
            return Next::Go(Pos::Profile { k: 0, r: 0 }, acc);
        };
        let Some(&pi) = plan.policies.get(p) else {
            // Every policy of the tier fell through: its default action applies.
            let last = plan.policies.last().map(|&pi| &self.model.policies[pi]);
            acc.steps
                .push(Self::end_of_tier_hit(self.model, plan, last));
            return match plan.tier.default_action {
                TierDefaultAction::Deny => {
                    acc.verdict = Verdict::Deny;
                    Next::Done(acc)
                }
                TierDefaultAction::Pass => Next::Go(next_tier, acc),
            };
        };
        let policy = &self.model.policies[pi];
        let Some(rule) = policy.rules_in(self.dir).nth(r) else {
            acc.notes.push(format!(
                "{} (tier {}): no {} rule matched",
                policy.display,
                plan.tier.name,
                self.dir.word()
            ));
            return Next::Go(Pos::Tier { t, p: p + 1, r: 0 }, acc);
        };
        let tri = self.match_rule(rule, self.cache.raw_rule(self.model, pi, rule));
        acc.checked
            .push(check(&plan.tier.name, &policy.display, rule, &tri));
        let hit = Self::policy_hit(plan, policy, rule);
        let next = Pos::Tier { t, p, r: r + 1 };
        self.decide(tri, &rule.action, hit, next, next_tier, false, acc)
    }

    /// Rule `r` of profile `k`, or the end of the profiles.
    fn profile_step(&self, k: usize, r: usize, mut acc: Acc) -> Next {
        let next_profile = Pos::Profile { k: k + 1, r: 0 };
        let Some(prof) = self.plan.profiles.get(k) else {
            acc.steps
                .push(Self::no_profile_hit(self.model, self.plan, self.ep));
            acc.verdict = Verdict::Deny;
            return Next::Done(acc);
        };
        let base = profile_base(prof);
        match &prof.rules {
            ProfileRules::AllowAll(why) => {
                acc.steps.push(allow_all_hit(why, base));
                acc.verdict = Verdict::Allow;
                Next::Done(acc)
            }
            ProfileRules::Missing => {
                acc.steps.push(missing_profile_hit(prof, base));
                acc.verdict = Verdict::Unknown;
                Next::Done(acc)
            }
            ProfileRules::NoRules => Next::Go(next_profile, acc),
            ProfileRules::Rules(list) => {
                let Some((rule, raw, _)) = list.get(r) else {
                    return Next::Go(next_profile, acc);
                };
                let tri = self.match_rule(rule, Some(raw));
                acc.checked
                    .push(check(PROFILE_TIER, &prof.name, rule, &tri));
                let hit = PolicyHit {
                    rule: Some(rule.index),
                    rule_line: Some(rule.line),
                    ..base
                };
                let next = Pos::Profile { k, r: r + 1 };
                self.decide(tri, &rule.action, hit, next, next_profile, true, acc)
            }
        }
    }

    /// Apply a rule's action according to whether it matched; an undecidable rule is followed
    /// both ways and only makes the verdict Unknown when the two ways end differently.
    #[allow(clippy::too_many_arguments)]
    fn decide(
        &self,
        tri: Tri,
        action: &str,
        hit: PolicyHit,
        next: Pos,
        pass_to: Pos,
        profile: bool,
        mut acc: Acc,
    ) -> Next {
        match tri {
            Tri::No(_) => Next::Go(next, acc),
            Tri::Yes => apply(act(action), hit, next, pass_to, profile, acc),
            Tri::Unknown(reason) => {
                if matches!(act(action), Act::Log) {
                    // A Log rule changes nothing either way.
                    return Next::Go(next, acc);
                }
                let what = unknown_rule_note(&hit, &reason);
                let left = self.budget.get();
                if left > 0 {
                    self.budget.set(left - 1);
                    let matched = match apply(
                        act(action),
                        hit.clone(),
                        next,
                        pass_to,
                        profile,
                        acc.clone(),
                    ) {
                        Next::Go(p, a) => self.run(p, a),
                        Next::Done(a) => a,
                    };
                    let unmatched = self.run(next, acc.clone());
                    if matched.verdict == unmatched.verdict && matched.verdict != Verdict::Unknown {
                        let mut out = unmatched;
                        out.notes.push(format!(
                            "{what}; the verdict is the same whether or not it matches"
                        ));
                        return Next::Done(out);
                    }
                }
                acc.steps.push(PolicyHit {
                    action: HitAction::Unknown,
                    note: Some(what),
                    ..hit
                });
                acc.verdict = Verdict::Unknown;
                Next::Done(acc)
            }
        }
    }

    /// No profile allowed the flow (or the endpoint has none): Felix drops.
    fn no_profile_hit(model: &Model<'_>, plan: &Plan<'_>, ep: usize) -> PolicyHit {
        let note = if plan.profiles.is_empty() {
            format!(
                "{} has no profiles and no policy decided: Felix drops",
                model.endpoints[ep].key
            )
        } else {
            "no profile matched".to_string()
        };
        PolicyHit {
            index: 0,
            tier: PROFILE_TIER.to_string(),
            policy: NO_MATCH.to_string(),
            flow_log_name: format!("{PROFILE_TIER}.{NO_MATCH}"),
            action: HitAction::NoProfileDeny,
            rule: None,
            rule_line: None,
            path: None,
            line: None,
            note: Some(note),
        }
    }

    fn policy_hit(plan: &TierPlan, policy: &Policy, rule: &PolicyRule) -> PolicyHit {
        PolicyHit {
            index: 0,
            tier: plan.tier.name.clone(),
            policy: policy.display.clone(),
            flow_log_name: flow_log_name(policy),
            action: HitAction::Unknown,
            rule: Some(rule.index),
            rule_line: Some(rule.line),
            path: Some(policy.loc.path.clone()),
            line: Some(policy.loc.line),
            note: None,
        }
    }

    /// Felix reports an end-of-tier action against the tier's last policy, rule index -1.
    fn end_of_tier_hit(model: &Model<'_>, plan: &TierPlan, last: Option<&Policy>) -> PolicyHit {
        let (action, word) = match plan.tier.default_action {
            TierDefaultAction::Deny => (HitAction::EotDeny, "Deny"),
            TierDefaultAction::Pass => (HitAction::EotPass, "Pass"),
        };
        let names: Vec<&str> = plan
            .policies
            .iter()
            .map(|&pi| model.policies[pi].display.as_str())
            .collect();
        let loc = plan.loc.clone().or_else(|| last.map(|p| p.loc.clone()));
        PolicyHit {
            index: 0,
            tier: plan.tier.name.clone(),
            policy: last.map(|p| p.display.clone()).unwrap_or_default(),
            flow_log_name: last
                .map(flow_log_name)
                .unwrap_or_else(|| format!("{}.{NO_MATCH}", plan.tier.name)),
            action,
            rule: None,
            rule_line: None,
            path: loc.as_ref().map(|l| l.path.clone()),
            line: loc.as_ref().map(|l| l.line),
            note: Some(format!(
                "no rule of {} matched: end of tier {}, default action {word}",
                names.join(", "),
                plan.tier.name
            )),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Rule matching
    // -----------------------------------------------------------------------------------------

    fn match_rule(&self, rule: &PolicyRule, raw: Option<&resources::Rule>) -> Tri {
        let flow = self.flow;
        let v6 = flow.dst.ip.is_ipv6();
        let proto = protocol_name(flow.protocol);
        let mut parts = Vec::new();
        if let Some(v) = rule.ip_version {
            let want6 = v == 6;
            if want6 != v6 {
                parts.push(Tri::No(format!(
                    "ipVersion {v}, the flow is IPv{}",
                    if v6 { 6 } else { 4 }
                )));
            }
        }
        if let Some(p) = &rule.protocol {
            parts.push(match protocol_number(p) {
                Some(n) if n == flow.protocol => Tri::Yes,
                Some(_) => Tri::No(format!("protocol {p}, the flow is {proto}")),
                None => Tri::Unknown(format!("protocol {p:?} is not one Calico knows")),
            });
        }
        if let Some(raw) = raw {
            if let Some(np) = &raw.not_protocol {
                let np = np.to_string();
                parts.push(match protocol_number(&np) {
                    Some(n) if n == flow.protocol => {
                        Tri::No(format!("notProtocol {np}, the flow is {proto}"))
                    }
                    Some(_) => Tri::Yes,
                    None => Tri::Unknown(format!("notProtocol {np:?} is not one Calico knows")),
                });
            }
            if raw.icmp.is_some() || raw.not_icmp.is_some() {
                parts.push(if matches!(flow.protocol, PROTO_ICMP | PROTO_ICMPV6) {
                    Tri::Unknown(
                        "icmp/notICMP type and code: the flow's ICMP type is not given".into(),
                    )
                } else {
                    Tri::No(format!("icmp match, the flow is {proto}"))
                });
            }
            if raw.http.is_some() {
                parts.push(Tri::Unknown(
                    "http match (application layer policy) is not evaluated offline".into(),
                ));
            }
        }
        parts.extend(self.match_side(&rule.src, &flow.src, "source", raw.map(|r| &r.source)));
        parts.extend(self.match_side(
            &rule.dst,
            &flow.dst,
            "destination",
            raw.map(|r| &r.destination),
        ));
        Tri::all(parts)
    }

    fn match_side(
        &self,
        side: &RuleSide,
        end: &FlowEnd,
        name: &str,
        raw: Option<&resources::EntityRule>,
    ) -> Vec<Tri> {
        let m = self.model;
        let flow = self.flow;
        let is_dst = name == "destination";
        let label = &end.label;
        let mut out = Vec::new();
        // What Felix's selector IP sets hold for this IP: the endpoint and the network sets.
        let labels: Vec<&crate::calico::labels::InheritedLabels> = end
            .endpoint
            .map(|i| &m.endpoints[i].labels)
            .into_iter()
            .chain(end.net_sets.iter().map(|&i| &m.net_sets[i].labels))
            .collect();
        let sa_rule = raw.is_some_and(|r| r.service_accounts.is_some());
        if let Some(pos_raw) = &side.positive_raw {
            let shown =
                selector_fields(side, raw).unwrap_or_else(|| format!("selector `{pos_raw}`"));
            out.push(match &side.positive {
                None => Tri::Unknown(format!("{name} selector {pos_raw:?} does not parse")),
                Some(sel) if labels.iter().any(|l| sel.evaluate(*l)) => Tri::Yes,
                Some(_) if sa_rule && !self.sa_labels_known(end) => Tri::Unknown(format!(
                    "{name} serviceAccounts: the labels of {label}'s service account are not in the bundle"
                )),
                Some(_) if labels.is_empty() => Tri::No(format!(
                    "{name} {shown} cannot match {label}: no endpoint or network set of the bundle holds it"
                )),
                Some(_) => Tri::No(format!("{name} {shown} does not match {label}")),
            });
        }
        if let Some(neg_raw) = &side.negated_raw {
            out.push(match &side.negated {
                None => Tri::Unknown(format!("{name} notSelector {neg_raw:?} does not parse")),
                Some(sel) if labels.iter().any(|l| sel.evaluate(*l)) => {
                    Tri::No(format!("{name} notSelector `{neg_raw}` matches {label}"))
                }
                Some(_) => Tri::Yes,
            });
        }
        if !side.nets.is_empty() {
            let inside = side
                .nets
                .iter()
                .filter_map(|n| parse_net(n))
                .any(|n| n.contains(&end.ip));
            if !inside {
                out.push(Tri::No(format!(
                    "{} is not in {name} nets [{}]",
                    end.ip,
                    side.nets.join(", ")
                )));
            }
        }
        if let Some(n) = side
            .not_nets
            .iter()
            .find(|n| parse_net(n).is_some_and(|net| net.contains(&end.ip)))
        {
            out.push(Tri::No(format!("{} is in {name} notNets {n}", end.ip)));
        }
        if !side.ports.is_empty() {
            out.push(if !has_ports(flow.protocol) {
                Tri::No(format!(
                    "{name} ports apply to TCP, UDP and SCTP; the flow is {}",
                    protocol_name(flow.protocol)
                ))
            } else if !is_dst {
                Tri::Unknown(format!(
                    "source ports {}: the flow's source port is not given",
                    ports_text(&side.ports)
                ))
            } else {
                match flow.dport {
                    None => Tri::Unknown(format!(
                        "destination ports {}: the flow's destination port is not given",
                        ports_text(&side.ports)
                    )),
                    Some(d) if side.ports.iter().any(|p| self.port_matches(p, d, end)) => Tri::Yes,
                    Some(d) => Tri::No(format!(
                        "port {d} is not in destination ports {}",
                        ports_text(&side.ports)
                    )),
                }
            });
        }
        if !side.not_ports.is_empty() && has_ports(flow.protocol) {
            out.push(if !is_dst {
                Tri::Unknown(format!(
                    "source notPorts {}: the flow's source port is not given",
                    ports_text(&side.not_ports)
                ))
            } else {
                match flow.dport {
                    None => Tri::Unknown(format!(
                        "destination notPorts {}: the flow's destination port is not given",
                        ports_text(&side.not_ports)
                    )),
                    Some(d) if side.not_ports.iter().any(|p| self.port_matches(p, d, end)) => {
                        Tri::No(format!(
                            "port {d} is in destination notPorts {}",
                            ports_text(&side.not_ports)
                        ))
                    }
                    Some(_) => Tri::Yes,
                }
            });
        }
        if let Some((ns, svc)) = &side.service {
            out.push(Tri::Unknown(format!(
                "{name} services {ns}/{svc}: service matches are not evaluated offline"
            )));
        }
        out
    }

    /// A numeric port, a range, or a named port the endpoint at this end declares for the
    /// flow's protocol (Felix's named-port IP sets hold `ip,proto:port` of such endpoints).
    fn port_matches(&self, p: &Port, d: u16, end: &FlowEnd) -> bool {
        match p {
            Port::Number(n) => *n == d,
            Port::Range(a, b) => (*a..=*b).contains(&d),
            Port::Named(name) => end.endpoint.is_some_and(|i| {
                let proto = protocol_name(self.flow.protocol);
                self.model.endpoints[i]
                    .ports
                    .iter()
                    .any(|np| &np.name == name && np.protocol == proto && np.port == d)
            }),
        }
    }

    /// Whether the `ksa.` profile labels (`pcsa.*`) of the endpoint at this end are known.
    fn sa_labels_known(&self, end: &FlowEnd) -> bool {
        sa_labels_known(self.model, end.endpoint)
    }
}

// ---------------------------------------------------------------------------------------------
// Verdict only
// ---------------------------------------------------------------------------------------------

/// One end of a flow as [`decide_direction`] reads it: no labels or names, only what rules
/// match on.
#[derive(Debug, Clone, Copy)]
pub struct QuickEnd<'a> {
    /// Index into `Model::endpoints` when the IP belongs to a Calico endpoint.
    pub endpoint: Option<usize>,
    pub ip: IpAddr,
    /// Network sets whose nets hold the IP, as [`FlowEnd::net_sets`].
    pub net_sets: &'a [usize],
}

/// A flow as [`decide_direction`] reads it.
#[derive(Debug, Clone, Copy)]
pub struct QuickFlow<'a> {
    pub src: QuickEnd<'a>,
    pub dst: QuickEnd<'a>,
    pub protocol: u8,
    pub dport: Option<u16>,
}

impl<'a> QuickFlow<'a> {
    pub fn of(flow: &'a Flow) -> QuickFlow<'a> {
        let end = |e: &'a FlowEnd| QuickEnd {
            endpoint: e.endpoint,
            ip: e.ip,
            net_sets: &e.net_sets,
        };
        QuickFlow {
            src: end(&flow.src),
            dst: end(&flow.dst),
            protocol: flow.protocol,
            dport: flow.dport,
        }
    }
}

/// Where in an endpoint's plan a direction was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepRef {
    /// Rule `rule` (counted among the policy's rules of the direction) of the `policy`-th
    /// policy of the plan's `tier`-th tier.
    PolicyRule {
        tier: usize,
        policy: usize,
        rule: usize,
    },
    /// No policy of the plan's `tier`-th tier decided.
    EndOfTier { tier: usize },
    /// Rule `rule` of the endpoint's `profile`-th profile.
    ProfileRule { profile: usize, rule: usize },
    /// A profile that decides as a whole (an allow-all profile, or one not in the bundle).
    Profile { profile: usize },
    /// No profile decided.
    NoProfile,
}

/// The deciding step of a direction, by position: [`PlanCache::deciding_hit`] turns it into
/// the [`PolicyHit`] the explaining evaluation reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decided {
    pub step: StepRef,
    pub action: HitAction,
    /// As [`PolicyHit::index`].
    pub index: usize,
    /// For an Unknown step at a rule: its match could not be decided offline (rather than its
    /// action being one Calico does not know).
    pub undecidable: bool,
}

/// The verdict of one direction without its explanation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub direction: Direction,
    /// The endpoint policed; `None` when this end is not a Calico endpoint (Allow).
    pub endpoint: Option<usize>,
    pub verdict: Verdict,
    pub deciding: Option<Decided>,
}

/// The verdict and deciding step of [`evaluate_direction`], computed without building any
/// explanation: no strings, no allocation per flow once the endpoint's plan and its policies'
/// compiled rules are cached. For evaluating many flows; explain the few that matter with
/// [`PlanCache::deciding_hit`] or [`evaluate_cached`].
pub fn decide_direction<'b>(
    model: &Model<'b>,
    flow: &QuickFlow<'_>,
    dir: Direction,
    cache: &PlanCache<'b>,
) -> Decision {
    let end = match dir {
        Direction::Egress => &flow.src,
        Direction::Ingress => &flow.dst,
    };
    let Some(ep) = end.endpoint else {
        return Decision {
            direction: dir,
            endpoint: None,
            verdict: Verdict::Allow,
            deciding: None,
        };
    };
    let q = Quick {
        model,
        cache,
        flow,
        plan: cache.plan(model, ep, dir),
        dir,
        budget: Cell::new(BRANCH_BUDGET),
    };
    let (verdict, decided) = q.run(Pos::Tier { t: 0, p: 0, r: 0 }, 0);
    Decision {
        direction: dir,
        endpoint: Some(ep),
        verdict,
        deciding: Some(decided),
    }
}

/// A rule's action, parsed once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ActKind {
    Allow,
    Deny,
    Pass,
    Log,
    Other,
}

/// What matching a rule needs beyond the model's rule, parsed once: protocol numbers, nets,
/// and the raw rule's fields the model does not carry.
#[derive(Debug, Clone)]
struct Compiled {
    act: ActKind,
    /// `ipVersion`: whether the rule wants IPv6.
    v6: Option<bool>,
    /// `protocol`: `Some(None)` for a protocol Calico does not know.
    protocol: Option<Option<u8>>,
    not_protocol: Option<Option<u8>>,
    /// An `icmp` or `notICMP` match.
    icmp: bool,
    http: bool,
    /// Source, then destination.
    sides: [CompiledSide; 2],
}

#[derive(Debug, Clone, Default)]
struct CompiledSide {
    /// A `serviceAccounts` match.
    service_accounts: bool,
    /// `nets` and `notNets` that parse (the others never match).
    nets: Vec<IpNet>,
    not_nets: Vec<IpNet>,
}

impl Compiled {
    fn new(rule: &PolicyRule, raw: Option<&resources::Rule>) -> Compiled {
        let act = match act(&rule.action) {
            Act::Allow => ActKind::Allow,
            Act::Deny => ActKind::Deny,
            Act::Pass => ActKind::Pass,
            Act::Log => ActKind::Log,
            Act::Other(_) => ActKind::Other,
        };
        let side = |s: &RuleSide, er: Option<&resources::EntityRule>| CompiledSide {
            service_accounts: er.is_some_and(|r| r.service_accounts.is_some()),
            nets: s.nets.iter().filter_map(|n| parse_net(n)).collect(),
            not_nets: s.not_nets.iter().filter_map(|n| parse_net(n)).collect(),
        };
        Compiled {
            act,
            v6: rule.ip_version.map(|v| v == 6),
            protocol: rule.protocol.as_deref().map(protocol_number),
            not_protocol: raw
                .and_then(|r| r.not_protocol.as_ref())
                .map(|np| protocol_number(&np.to_string())),
            icmp: raw.is_some_and(|r| r.icmp.is_some() || r.not_icmp.is_some()),
            http: raw.is_some_and(|r| r.http.is_some()),
            sides: [
                side(&rule.src, raw.map(|r| &r.source)),
                side(&rule.dst, raw.map(|r| &r.destination)),
            ],
        }
    }
}

/// Kleene truth without reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum K {
    Yes,
    No,
    Unknown,
}

/// [`Eval`] without the explanation: the same walk, the same budget, the same order.
struct Quick<'a, 'b> {
    model: &'a Model<'b>,
    cache: &'a PlanCache<'b>,
    flow: &'a QuickFlow<'a>,
    plan: &'a Plan<'b>,
    dir: Direction,
    budget: Cell<usize>,
}

/// Where to go on, and how many flow-log steps were taken so far; or the verdict and the step
/// that decided it.
enum QNext {
    Go(Pos, usize),
    Done(Verdict, Decided),
}

impl Quick<'_, '_> {
    fn run(&self, mut pos: Pos, mut n: usize) -> (Verdict, Decided) {
        loop {
            let next = match pos {
                Pos::Tier { t, p, r } => self.tier_step(t, p, r, n),
                Pos::Profile { k, r } => self.profile_step(k, r, n),
            };
            match next {
                QNext::Go(p, m) => {
                    pos = p;
                    n = m;
                }
                QNext::Done(v, d) => return (v, d),
            }
        }
    }

    fn tier_step(&self, t: usize, p: usize, r: usize, n: usize) -> QNext {
        let next_tier = Pos::Tier {
            t: t + 1,
            p: 0,
            r: 0,
        };
        let Some(plan) = self.plan.tiers.get(t) else {
            return QNext::Go(Pos::Profile { k: 0, r: 0 }, n);
        };
        let Some(&pi) = plan.policies.get(p) else {
            return match plan.tier.default_action {
                TierDefaultAction::Deny => QNext::Done(
                    Verdict::Deny,
                    Decided {
                        step: StepRef::EndOfTier { tier: t },
                        action: HitAction::EotDeny,
                        index: n,
                        undecidable: false,
                    },
                ),
                // An end-of-tier pass is a flow-log step.
                TierDefaultAction::Pass => QNext::Go(next_tier, n + 1),
            };
        };
        let Some((ri, c)) = self.cache.compiled(self.model, pi, self.dir).get(r) else {
            return QNext::Go(Pos::Tier { t, p: p + 1, r: 0 }, n);
        };
        let rule = &self.model.policies[pi].rules[*ri];
        let step = StepRef::PolicyRule {
            tier: t,
            policy: p,
            rule: r,
        };
        let next = Pos::Tier { t, p, r: r + 1 };
        self.decide(
            self.match_rule(rule, c),
            c.act,
            step,
            next,
            next_tier,
            false,
            n,
        )
    }

    fn profile_step(&self, k: usize, r: usize, n: usize) -> QNext {
        let next_profile = Pos::Profile { k: k + 1, r: 0 };
        let decided = |step, action| Decided {
            step,
            action,
            index: n,
            undecidable: false,
        };
        let Some(prof) = self.plan.profiles.get(k) else {
            return QNext::Done(
                Verdict::Deny,
                decided(StepRef::NoProfile, HitAction::NoProfileDeny),
            );
        };
        match &prof.rules {
            ProfileRules::AllowAll(_) => QNext::Done(
                Verdict::Allow,
                decided(StepRef::Profile { profile: k }, HitAction::ProfileAllow),
            ),
            ProfileRules::Missing => QNext::Done(
                Verdict::Unknown,
                decided(StepRef::Profile { profile: k }, HitAction::Unknown),
            ),
            ProfileRules::NoRules => QNext::Go(next_profile, n),
            ProfileRules::Rules(list) => {
                let Some((rule, _, c)) = list.get(r) else {
                    return QNext::Go(next_profile, n);
                };
                let step = StepRef::ProfileRule {
                    profile: k,
                    rule: r,
                };
                let next = Pos::Profile { k, r: r + 1 };
                self.decide(
                    self.match_rule(rule, c),
                    c.act,
                    step,
                    next,
                    next_profile,
                    true,
                    n,
                )
            }
        }
    }

    /// As [`Eval::decide`].
    #[allow(clippy::too_many_arguments)]
    fn decide(
        &self,
        k: K,
        act: ActKind,
        step: StepRef,
        next: Pos,
        pass_to: Pos,
        profile: bool,
        n: usize,
    ) -> QNext {
        match k {
            K::No => QNext::Go(next, n),
            K::Yes => quick_apply(act, step, next, pass_to, profile, n),
            K::Unknown => {
                if act == ActKind::Log {
                    return QNext::Go(next, n);
                }
                let left = self.budget.get();
                if left > 0 {
                    self.budget.set(left - 1);
                    let matched = match quick_apply(act, step, next, pass_to, profile, n) {
                        QNext::Go(p, m) => self.run(p, m),
                        QNext::Done(v, d) => (v, d),
                    };
                    let unmatched = self.run(next, n);
                    if matched.0 == unmatched.0 && matched.0 != Verdict::Unknown {
                        return QNext::Done(unmatched.0, unmatched.1);
                    }
                }
                QNext::Done(
                    Verdict::Unknown,
                    Decided {
                        step,
                        action: HitAction::Unknown,
                        index: n,
                        undecidable: true,
                    },
                )
            }
        }
    }

    /// As [`Eval::match_rule`], without reasons.
    fn match_rule(&self, rule: &PolicyRule, c: &Compiled) -> K {
        let flow = self.flow;
        let mut unknown = false;
        if c.v6.is_some_and(|want6| want6 != flow.dst.ip.is_ipv6()) {
            return K::No;
        }
        match c.protocol {
            Some(Some(n)) if n != flow.protocol => return K::No,
            Some(None) => unknown = true,
            _ => {}
        }
        match c.not_protocol {
            Some(Some(n)) if n == flow.protocol => return K::No,
            Some(None) => unknown = true,
            _ => {}
        }
        if c.icmp {
            if matches!(flow.protocol, PROTO_ICMP | PROTO_ICMPV6) {
                unknown = true;
            } else {
                return K::No;
            }
        }
        unknown |= c.http;
        for (side, cs, end, is_dst) in [
            (&rule.src, &c.sides[0], &flow.src, false),
            (&rule.dst, &c.sides[1], &flow.dst, true),
        ] {
            match self.match_side(side, cs, end, is_dst) {
                K::No => return K::No,
                K::Unknown => unknown = true,
                K::Yes => {}
            }
        }
        if unknown { K::Unknown } else { K::Yes }
    }

    /// As [`Eval::match_side`], without reasons.
    fn match_side(&self, side: &RuleSide, c: &CompiledSide, end: &QuickEnd<'_>, is_dst: bool) -> K {
        let flow = self.flow;
        let mut unknown = false;
        if side.positive_raw.is_some() {
            match &side.positive {
                None => unknown = true,
                Some(sel) if self.selects(sel, end) => {}
                Some(_) if c.service_accounts && !sa_labels_known(self.model, end.endpoint) => {
                    unknown = true
                }
                Some(_) => return K::No,
            }
        }
        if side.negated_raw.is_some() {
            match &side.negated {
                None => unknown = true,
                Some(sel) if self.selects(sel, end) => return K::No,
                Some(_) => {}
            }
        }
        if !side.nets.is_empty() && !c.nets.iter().any(|n| n.contains(&end.ip)) {
            return K::No;
        }
        if c.not_nets.iter().any(|n| n.contains(&end.ip)) {
            return K::No;
        }
        let ports = has_ports(flow.protocol);
        if !side.ports.is_empty() {
            if !ports {
                return K::No;
            }
            match flow.dport {
                _ if !is_dst => unknown = true,
                None => unknown = true,
                Some(d) if side.ports.iter().any(|p| self.port_matches(p, d, end)) => {}
                Some(_) => return K::No,
            }
        }
        if !side.not_ports.is_empty() && ports {
            match flow.dport {
                _ if !is_dst => unknown = true,
                None => unknown = true,
                Some(d) if side.not_ports.iter().any(|p| self.port_matches(p, d, end)) => {
                    return K::No;
                }
                Some(_) => {}
            }
        }
        unknown |= side.service.is_some();
        if unknown { K::Unknown } else { K::Yes }
    }

    /// Whether the selector matches the endpoint or a network set holding the IP (what
    /// Felix's selector IP sets hold).
    fn selects(&self, sel: &crate::calico::selector::Selector, end: &QuickEnd<'_>) -> bool {
        let m = self.model;
        end.endpoint
            .is_some_and(|i| sel.evaluate(&m.endpoints[i].labels))
            || end
                .net_sets
                .iter()
                .any(|&s| sel.evaluate(&m.net_sets[s].labels))
    }

    /// As [`Eval::port_matches`].
    fn port_matches(&self, p: &Port, d: u16, end: &QuickEnd<'_>) -> bool {
        match p {
            Port::Number(n) => *n == d,
            Port::Range(a, b) => (*a..=*b).contains(&d),
            Port::Named(name) => end.endpoint.is_some_and(|i| {
                self.model.endpoints[i].ports.iter().any(|np| {
                    &np.name == name
                        && np.port == d
                        && is_protocol_name(&np.protocol, self.flow.protocol)
                })
            }),
        }
    }
}

/// `name == protocol_name(p)`, without building the name for the protocols Calico names.
fn is_protocol_name(name: &str, p: u8) -> bool {
    match p {
        PROTO_TCP => name == "tcp",
        PROTO_UDP => name == "udp",
        PROTO_ICMP => name == "icmp",
        PROTO_ICMPV6 => name == "icmpv6",
        PROTO_SCTP => name == "sctp",
        PROTO_UDPLITE => name == "udplite",
        _ => name == protocol_name(p),
    }
}

/// As [`apply`].
fn quick_apply(
    act: ActKind,
    step: StepRef,
    next: Pos,
    pass_to: Pos,
    profile: bool,
    n: usize,
) -> QNext {
    let done = |verdict, action| {
        QNext::Done(
            verdict,
            Decided {
                step,
                action,
                index: n,
                undecidable: false,
            },
        )
    };
    match act {
        ActKind::Allow if profile => done(Verdict::Allow, HitAction::ProfileAllow),
        ActKind::Allow => done(Verdict::Allow, HitAction::Allow),
        ActKind::Deny if profile => done(Verdict::Deny, HitAction::ProfileDeny),
        ActKind::Deny => done(Verdict::Deny, HitAction::Deny),
        // A pass is a flow-log step; a log step is not.
        ActKind::Pass => QNext::Go(pass_to, n + 1),
        ActKind::Log => QNext::Go(next, n),
        ActKind::Other => done(Verdict::Unknown, HitAction::Unknown),
    }
}

/// Whether the `ksa.` profile labels (`pcsa.*`) of the endpoint at this end are known.
fn sa_labels_known(model: &Model<'_>, endpoint: Option<usize>) -> bool {
    let Some(i) = endpoint else { return true };
    model.endpoints[i]
        .labels
        .parents
        .iter()
        .find(|p| p.id.starts_with(SERVICE_ACCOUNT_PROFILE_PREFIX))
        .is_none_or(|p| !p.labels.is_empty())
}

impl<'b> PlanCache<'b> {
    /// The deciding step of a [`Decision`] exactly as [`evaluate_direction`] reports it in
    /// `DirectionResult::deciding`. `flow`, the flow decided, is read only to word why a rule
    /// could not be decided (an Unknown verdict); without it that note is `None`.
    pub fn deciding_hit(
        &self,
        model: &Model<'b>,
        flow: Option<&Flow>,
        d: &Decision,
    ) -> Option<PolicyHit> {
        let decided = d.deciding?;
        let ep = d.endpoint?;
        let dir = d.direction;
        let plan = self.plan(model, ep, dir);
        // Why a rule could not be decided: the explaining match, on the one rule.
        let reason = |rule: &PolicyRule, raw: Option<&resources::Rule>| {
            let ev = Eval {
                model,
                cache: self,
                flow: flow?,
                dir,
                ep,
                plan,
                budget: Cell::new(0),
            };
            match ev.match_rule(rule, raw) {
                Tri::Unknown(reason) => Some(reason),
                _ => None,
            }
        };
        // The note of a rule's step: its unknown action, or why it could not be decided.
        let rule_note = |hit: &PolicyHit, rule: &PolicyRule, raw| match decided.action {
            HitAction::Unknown if decided.undecidable => {
                reason(rule, raw).map(|r| unknown_rule_note(hit, &r))
            }
            HitAction::Unknown => Some(unknown_action_note(&rule.action)),
            _ => None,
        };
        let hit = match decided.step {
            StepRef::PolicyRule { tier, policy, rule } => {
                let t = plan.tiers.get(tier)?;
                let pi = *t.policies.get(policy)?;
                let (ri, _) = self.compiled(model, pi, dir).get(rule)?;
                let p = &model.policies[pi];
                let rule = &p.rules[*ri];
                let hit = Eval::policy_hit(t, p, rule);
                let note = rule_note(&hit, rule, self.raw_rule(model, pi, rule));
                PolicyHit { note, ..hit }
            }
            StepRef::EndOfTier { tier } => {
                let t = plan.tiers.get(tier)?;
                let last = t.policies.last().map(|&pi| &model.policies[pi]);
                Eval::end_of_tier_hit(model, t, last)
            }
            StepRef::ProfileRule { profile, rule } => {
                let prof = plan.profiles.get(profile)?;
                let ProfileRules::Rules(list) = &prof.rules else {
                    return None;
                };
                let (rule, raw, _) = list.get(rule)?;
                let hit = PolicyHit {
                    rule: Some(rule.index),
                    rule_line: Some(rule.line),
                    ..profile_base(prof)
                };
                let note = rule_note(&hit, rule, Some(raw));
                PolicyHit { note, ..hit }
            }
            StepRef::Profile { profile } => {
                let prof = plan.profiles.get(profile)?;
                match &prof.rules {
                    ProfileRules::AllowAll(why) => allow_all_hit(why, profile_base(prof)),
                    _ => missing_profile_hit(prof, profile_base(prof)),
                }
            }
            StepRef::NoProfile => Eval::no_profile_hit(model, plan, ep),
        };
        Some(PolicyHit {
            index: decided.index,
            action: decided.action,
            ..hit
        })
    }

    /// `(policy, rule_line.or(line))` of [`Self::deciding_hit`], borrowed: what names the
    /// deciding rule, for grouping many decisions without building their hits.
    pub fn deciding_key<'a>(
        &'a self,
        model: &'a Model<'b>,
        d: &Decision,
    ) -> Option<(&'a str, Option<usize>)> {
        let decided = d.deciding?;
        let plan = self.plan(model, d.endpoint?, d.direction);
        Some(match decided.step {
            StepRef::PolicyRule { tier, policy, rule } => {
                let pi = *plan.tiers.get(tier)?.policies.get(policy)?;
                let (ri, _) = self.compiled(model, pi, d.direction).get(rule)?;
                let p = &model.policies[pi];
                (p.display.as_str(), Some(p.rules[*ri].line))
            }
            StepRef::EndOfTier { tier } => {
                let t = plan.tiers.get(tier)?;
                let last = t.policies.last().map(|&pi| &model.policies[pi]);
                let loc = t.loc.as_ref().or(last.map(|p| &p.loc));
                (
                    last.map(|p| p.display.as_str()).unwrap_or_default(),
                    loc.map(|l| l.line),
                )
            }
            StepRef::ProfileRule { profile, rule } => {
                let prof = plan.profiles.get(profile)?;
                let ProfileRules::Rules(list) = &prof.rules else {
                    return None;
                };
                (prof.name.as_str(), Some(list.get(rule)?.0.line))
            }
            StepRef::Profile { profile } => {
                let prof = plan.profiles.get(profile)?;
                (prof.name.as_str(), prof.loc.as_ref().map(|l| l.line))
            }
            StepRef::NoProfile => (NO_MATCH, None),
        })
    }
}

enum Next {
    Go(Pos, Acc),
    Done(Acc),
}

fn apply(
    action: Act,
    hit: PolicyHit,
    next: Pos,
    pass_to: Pos,
    profile: bool,
    mut acc: Acc,
) -> Next {
    let (hit_action, verdict) = match action {
        Act::Allow if profile => (HitAction::ProfileAllow, Some(Verdict::Allow)),
        Act::Allow => (HitAction::Allow, Some(Verdict::Allow)),
        Act::Deny if profile => (HitAction::ProfileDeny, Some(Verdict::Deny)),
        Act::Deny => (HitAction::Deny, Some(Verdict::Deny)),
        Act::Pass if profile => (HitAction::ProfilePass, None),
        Act::Pass => (HitAction::Pass, None),
        Act::Log => (HitAction::Log, None),
        Act::Other(a) => {
            acc.steps.push(PolicyHit {
                action: HitAction::Unknown,
                note: Some(unknown_action_note(&a)),
                ..hit
            });
            acc.verdict = Verdict::Unknown;
            return Next::Done(acc);
        }
    };
    acc.steps.push(PolicyHit {
        action: hit_action,
        ..hit
    });
    match (verdict, hit_action) {
        (Some(v), _) => {
            acc.verdict = v;
            Next::Done(acc)
        }
        (None, HitAction::Log) => Next::Go(next, acc),
        (None, _) => Next::Go(pass_to, acc),
    }
}

/// The note of a rule whose match could not be decided and on which the verdict depends.
fn unknown_rule_note(hit: &PolicyHit, reason: &str) -> String {
    format!(
        "{}{}: {reason}",
        hit.policy,
        hit.rule.map(|r| format!(" rule {r}")).unwrap_or_default()
    )
}

fn unknown_action_note(action: &str) -> String {
    format!("action {action:?} is not one Calico knows")
}

/// A profile's step, before its action and rule are known.
fn profile_base(prof: &ProfilePlan<'_>) -> PolicyHit {
    PolicyHit {
        index: 0,
        tier: PROFILE_TIER.to_string(),
        policy: prof.name.clone(),
        flow_log_name: format!("{PROFILE_TIER}.{}", prof.name),
        action: HitAction::Unknown,
        rule: None,
        rule_line: None,
        path: prof.loc.as_ref().map(|l| l.path.clone()),
        line: prof.loc.as_ref().map(|l| l.line),
        note: None,
    }
}

fn allow_all_hit(why: &str, base: PolicyHit) -> PolicyHit {
    PolicyHit {
        action: HitAction::ProfileAllow,
        rule: Some(0),
        note: Some(why.to_string()),
        ..base
    }
}

fn missing_profile_hit(prof: &ProfilePlan<'_>, base: PolicyHit) -> PolicyHit {
    PolicyHit {
        note: Some(format!(
            "profile {} is not in the bundle: its rules are unknown",
            prof.name
        )),
        ..base
    }
}

fn check(tier: &str, policy: &str, rule: &PolicyRule, tri: &Tri) -> RuleCheck {
    let (outcome, reason) = match tri {
        Tri::Yes => (RuleOutcome::Match, None),
        Tri::No(r) => (RuleOutcome::NoMatch, Some(r.clone())),
        Tri::Unknown(r) => (RuleOutcome::Unknown, Some(r.clone())),
    };
    RuleCheck {
        tier: tier.to_string(),
        policy: policy.to_string(),
        rule: rule.index,
        rule_line: Some(rule.line),
        action: rule.action.clone(),
        outcome,
        reason,
    }
}

/// The v3 fields that make up a side's positive selector, as written:
/// "selector `app == 'x'` and namespaceSelector `team == 'y'`".
fn selector_fields(side: &RuleSide, raw: Option<&resources::EntityRule>) -> Option<String> {
    fn push(parts: &mut Vec<String>, field: &str, v: Option<&str>) {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            parts.push(format!("{field} `{v}`"));
        }
    }
    let mut parts = Vec::new();
    push(&mut parts, "selector", side.selector.as_deref());
    if side.positive_raw.is_some() && side.negated_raw.is_none() {
        // The notSelector was folded into the positive selector.
        push(&mut parts, "notSelector", side.not_selector.as_deref());
    }
    push(
        &mut parts,
        "namespaceSelector",
        side.namespace_selector.as_deref(),
    );
    if let Some(sa) = raw.and_then(|r| r.service_accounts.as_ref()) {
        if !sa.names.is_empty() {
            parts.push(format!("serviceAccounts.names {:?}", sa.names));
        }
        push(
            &mut parts,
            "serviceAccounts.selector",
            sa.selector.as_deref(),
        );
    }
    (!parts.is_empty()).then(|| parts.join(" and "))
}

fn ports_text(ports: &[Port]) -> String {
    let v: Vec<String> = ports.iter().map(|p| p.to_string()).collect();
    format!("[{}]", v.join(", "))
}

/// The policy name of flow logs: the v1 name (`ns/tier.name`, `tier.name`,
/// `ns/knp.default.name`).
fn flow_log_name(p: &Policy) -> String {
    p.key.v1_name.clone()
}

/// A profile's rules for one direction, as Felix gets them (selectors not namespaced).
fn profile_plan<'b>(
    model: &Model<'b>,
    profiles: &HashMap<&'b str, usize>,
    name: &str,
    dir: Direction,
) -> ProfilePlan<'b> {
    let found = profiles.get(name).map(|&i| &model.resources.profiles[i]);
    let loc = found.map(|p| p.loc());
    let rules = match found {
        Some(p) if !(p.item.ingress.is_empty() && p.item.egress.is_empty()) => {
            let item: &'b resources::Profile = p.item;
            let list = match dir {
                Direction::Ingress => &item.ingress,
                Direction::Egress => &item.egress,
            };
            ProfileRules::Rules(
                list.iter()
                    .enumerate()
                    .map(|(i, raw)| {
                        let rule = profile_rule(raw, dir, i);
                        let compiled = Compiled::new(&rule, Some(raw));
                        (rule, raw, compiled)
                    })
                    .collect(),
            )
        }
        _ if name.starts_with(NAMESPACE_PROFILE_PREFIX) => {
            ProfileRules::AllowAll("Calico's Kubernetes namespace profile allows all traffic")
        }
        _ if name == DEFAULT_ALLOW_PROFILE => {
            ProfileRules::AllowAll("Calico's default-allow profile allows all traffic")
        }
        Some(_) => ProfileRules::NoRules,
        None if name.starts_with(SERVICE_ACCOUNT_PROFILE_PREFIX) => ProfileRules::NoRules,
        None => ProfileRules::Missing,
    };
    ProfilePlan {
        name: name.to_string(),
        loc,
        rules,
    }
}

fn profile_rule(raw: &resources::Rule, dir: Direction, index: usize) -> PolicyRule {
    PolicyRule {
        direction: dir,
        index,
        action: raw.action.clone(),
        protocol: raw.protocol.as_ref().map(|p| p.to_string()),
        ip_version: raw.ip_version,
        src: profile_side(&raw.source),
        dst: profile_side(&raw.destination),
        line: raw.line,
    }
}

/// A profile rule side: profiles are global, so selectors get no namespace clause.
fn profile_side(er: &resources::EntityRule) -> RuleSide {
    crate::model::policies::side(er, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(action: HitAction, rule: Option<usize>) -> PolicyHit {
        PolicyHit {
            index: 1,
            tier: "default".into(),
            policy: "demo/p".into(),
            flow_log_name: "demo/default.p".into(),
            action,
            rule,
            rule_line: None,
            path: None,
            line: None,
            note: None,
        }
    }

    #[test]
    fn flow_log_strings_use_minus_one_for_end_of_tier() {
        assert_eq!(
            hit(HitAction::Allow, Some(2)).to_flow_log(),
            "1|default|demo/default.p|allow|2"
        );
        assert_eq!(
            hit(HitAction::EotDeny, None).to_flow_log(),
            "1|default|demo/default.p|deny|-1"
        );
        assert_eq!(
            hit(HitAction::EotPass, None).to_flow_log(),
            "1|default|demo/default.p|pass|-1"
        );
    }

    #[test]
    fn kleene_and_lets_a_no_outweigh_an_unknown() {
        assert_eq!(
            Tri::all(vec![Tri::Unknown("u".into()), Tri::No("n".into())]),
            Tri::No("n".into())
        );
        assert_eq!(
            Tri::all(vec![Tri::Yes, Tri::Unknown("u".into())]),
            Tri::Unknown("u".into())
        );
        assert_eq!(Tri::all(vec![Tri::Yes, Tri::Yes]), Tri::Yes);
        assert_eq!(Tri::all(vec![]), Tri::Yes);
    }

    /// Every flow between the ends of a fixture (each endpoint address, a network set's
    /// address, an external one) over protocols and the ports its rules and endpoints name.
    fn fixture_flows(m: &Model<'_>) -> Vec<Flow> {
        use crate::model::policies::RuleSide;
        let ip_end = |ip: IpAddr| FlowEnd {
            endpoint: None,
            ip,
            node: None,
            iface: None,
            label: format!("{ip}"),
            net_sets: m.net_set_index.containing(ip),
        };
        let mut ends: Vec<FlowEnd> = Vec::new();
        for (i, e) in m.endpoints.iter().enumerate() {
            for net in &e.ips {
                ends.push(super::super::flow::endpoint_end(m, i, net.addr()));
            }
        }
        for s in &m.net_sets {
            ends.extend(s.nets.first().map(|n| ip_end(n.addr())));
        }
        ends.push(ip_end("203.0.113.9".parse().expect("ip")));
        ends.push(ip_end("2001:db8::9".parse().expect("ip")));
        let mut ports: Vec<u16> = vec![1];
        let mut add = |side: &RuleSide| {
            for p in side.ports.iter().chain(&side.not_ports) {
                match p {
                    Port::Number(n) => ports.push(*n),
                    Port::Range(a, b) => ports.extend([*a, *b, b.saturating_add(1)]),
                    Port::Named(_) => {}
                }
            }
        };
        for r in m.policies.iter().flat_map(|p| &p.rules) {
            add(&r.src);
            add(&r.dst);
        }
        ports.extend(
            m.endpoints
                .iter()
                .flat_map(|e| e.ports.iter().map(|p| p.port)),
        );
        ports.sort_unstable();
        ports.dedup();
        let mut out = Vec::new();
        for src in &ends {
            for dst in &ends {
                if src.ip.is_ipv6() != dst.ip.is_ipv6() {
                    continue;
                }
                for protocol in [6, 17, 132, 1, 58, 47] {
                    let with_ports = has_ports(protocol);
                    let dports = std::iter::once(None)
                        .chain(ports.iter().copied().map(Some).filter(|_| with_ports));
                    for dport in dports {
                        out.push(Flow {
                            src: src.clone(),
                            dst: dst.clone(),
                            protocol,
                            dport,
                        });
                    }
                }
            }
        }
        out
    }

    #[test]
    fn the_verdict_only_evaluation_agrees_with_the_explaining_one_on_every_fixture_flow() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
        let mut dirs = vec![
            root.join("bundles/calico-bundle-demo-20261125T140215Z"),
            root.join("checks/CAL063-established-denied-grouped"),
            root.join("checks/CAL050-no-profile-matched"),
            root.join("checks/CAL015-staged-policies"),
        ];
        let mut fixtures: Vec<_> = std::fs::read_dir(root.join("trace-intent"))
            .expect("trace-intent fixtures")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        fixtures.sort();
        dirs.extend(fixtures);
        let mut verdicts = std::collections::BTreeMap::new();
        let mut actions = std::collections::BTreeSet::new();
        for dir in &dirs {
            let b = crate::bundle::Bundle::open(dir).expect("fixture");
            let m = Model::build(&b);
            let (quick_cache, full_cache) = (PlanCache::default(), PlanCache::default());
            for f in fixture_flows(&m) {
                let full = evaluate_cached(&m, &f, &full_cache);
                for (dir_result, dir) in [
                    (&full.egress, Direction::Egress),
                    (&full.ingress, Direction::Ingress),
                ] {
                    let quick = decide_direction(&m, &QuickFlow::of(&f), dir, &quick_cache);
                    let what = format!(
                        "{}: {} ({dir:?})",
                        dir_result.verdict.as_str(),
                        f.describe()
                    );
                    assert_eq!(quick.verdict, dir_result.verdict, "{what}");
                    let hit = quick_cache.deciding_hit(&m, Some(&f), &quick);
                    assert_eq!(hit, dir_result.deciding, "{what}");
                    let key = quick_cache.deciding_key(&m, &quick);
                    let want = dir_result
                        .deciding
                        .as_ref()
                        .map(|h| (h.policy.as_str(), h.rule_line.or(h.line)));
                    assert_eq!(key, want, "{what}");
                    *verdicts.entry(quick.verdict.as_str()).or_insert(0) += 1;
                    actions.extend(hit.map(|h| h.action.as_str()));
                }
            }
        }
        // The fixtures reach every verdict and the common kinds of deciding step.
        assert_eq!(verdicts.len(), 3, "{verdicts:?}");
        for a in ["allow", "deny", "eot-deny", "profile-allow", "unknown"] {
            assert!(actions.contains(a), "no {a} step in {actions:?}");
        }
    }

    #[test]
    fn profile_sides_are_not_namespaced_and_keep_not_selectors_apart() {
        let er = resources::EntityRule {
            not_selector: Some("app == 'x'".into()),
            ..Default::default()
        };
        let s = profile_side(&er);
        assert_eq!(s.positive_raw, None);
        assert_eq!(s.negated_raw.as_deref(), Some("app == 'x'"));
        let er = resources::EntityRule {
            selector: Some("role == 'db'".into()),
            ..Default::default()
        };
        let s = profile_side(&er);
        assert_eq!(s.positive_raw.as_deref(), Some("role == 'db'"));
    }
}
