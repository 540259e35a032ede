#!/usr/bin/env bash
#
# calico-collect.sh: collect a Calico support bundle (format "calico-bundle/1") for offline
# analysis with `calisnap analyze`.
#
#   calico-collect.sh node    [options]   run on a node, as root
#   calico-collect.sh cluster [options]   run where kubectl works; reaches every node via
#                                         `kubectl exec` into its calico-node pod
#
# Needs bash 4.4+, coreutils, tar and gzip; every other tool is used when present. A missing
# tool is recorded in manifest.json (exit code 127), never fatal. The collector only reads:
# it adds no iptables rules, loads no kernel module and writes nothing outside --out.
# See collector/README.md.

set -u -o pipefail

if [[ -z ${BASH_VERSINFO[0]:-} || ${BASH_VERSINFO[0]} -lt 4 || (${BASH_VERSINFO[0]} -eq 4 && ${BASH_VERSINFO[1]} -lt 4) ]]; then
	echo "${0##*/}: needs bash 4.4 or newer (this is ${BASH_VERSION:-not bash})" >&2
	exit 2
fi

COLLECTOR_VERSION="0.1.0"

# ---------------------------------------------------------------------------------------------
# THE NODE TABLE. Everything collected from a node comes from this table, in this order.
#
#   name     the command's name in manifest.json
#   when     conditions, comma-separated, all must hold:
#              always               every node
#              both-backends        iptables-legacy-save and iptables-nft-save are both installed
#              module:M             kernel module M is loaded or built in. Without it the tool
#                                   would make the kernel load M, and the collector loads nothing.
#              no-module:M          the opposite (used for read-only fallbacks)
#              file:P / no-file:P   path P exists / does not exist on the node
#              bpf                  the node runs Calico's eBPF dataplane (pinned cali_* maps or
#                                   cali programs listed by bpftool)
#              node-mode            only in `node` mode; `cluster` mode gets it from kubectl
#              each-iface           once per network interface except lo, {IFACE} filled in
#   command  argv split on blanks; {MAX_LOG_BYTES} and {IFACE} are filled in;
#            "@fn" calls the function fn defined below
#   path     where stdout goes, under nodes/<node>/ (stderr goes beside it as <path>.stderr)
# ---------------------------------------------------------------------------------------------
NODE_TABLE='
hostname              | always                                    | cat /proc/sys/kernel/hostname                | hostname
iptables-save         | always                                    | iptables-save -c                             | iptables-save.txt
ip6tables-save        | always                                    | ip6tables-save -c                            | ip6tables-save.txt
iptables-legacy-save  | both-backends,file:/proc/net/ip_tables_names  | iptables-legacy-save -c                  | iptables-legacy-save.txt
iptables-nft-save     | both-backends,module:nf_tables            | iptables-nft-save -c                         | iptables-nft-save.txt
ip6tables-legacy-save | both-backends,file:/proc/net/ip6_tables_names | ip6tables-legacy-save -c                 | ip6tables-legacy-save.txt
ip6tables-nft-save    | both-backends,module:nf_tables            | ip6tables-nft-save -c                        | ip6tables-nft-save.txt
ipset-save            | module:ip_set                             | ipset save                                   | ipset-save.txt
nft-ruleset           | module:nf_tables                          | nft list ruleset                             | nft-ruleset.txt
conntrack             | module:nf_conntrack_netlink               | conntrack -L                                 | conntrack.txt
conntrack-stats       | module:nf_conntrack_netlink               | conntrack -S                                 | conntrack-stats.txt
nf-conntrack-proc     | no-module:nf_conntrack_netlink,file:/proc/net/nf_conntrack | cat /proc/net/nf_conntrack  | nf_conntrack.txt
sysctl                | always                                    | sysctl -e net.ipv4.ip_forward net.ipv6.conf.all.forwarding net.ipv4.conf.all.rp_filter net.ipv4.conf.default.rp_filter net.netfilter.nf_conntrack_count net.netfilter.nf_conntrack_max net.netfilter.nf_conntrack_buckets net.netfilter.nf_conntrack_tcp_be_liberal net.netfilter.nf_conntrack_tcp_timeout_established net.bridge.bridge-nf-call-iptables | sysctl.txt
ip-addr               | always                                    | ip addr                                      | ip-addr.txt
ip-route              | always                                    | ip route                                     | ip-route.txt
ip-route-v6           | always                                    | ip -6 route                                  | ip-route-v6.txt
ip-rule               | always                                    | ip rule                                      | ip-rule.txt
ip-link               | always                                    | ip link                                      | ip-link.txt
ip-neigh              | always                                    | ip neigh                                     | ip-neigh.txt
dmesg                 | always                                    | dmesg                                        | dmesg.txt
felix-log             | node-mode,file:/var/log/calico/felix/current | tail -c {MAX_LOG_BYTES} /var/log/calico/felix/current | felix.log
felix-log             | node-mode,no-file:/var/log/calico/felix/current | @felix_log_from_runtime              | felix.log
bpftool-prog          | bpf                                       | bpftool -j prog show                         | bpf/bpftool-prog.json
bpftool-map           | bpf                                       | bpftool -j map show                          | bpf/bpftool-map.json
bpftool-net           | bpf                                       | bpftool -j net show                          | bpf/bpftool-net.json
calico-bpf-ifstate    | bpf                                       | calico-node -bpf ifstate dump                | bpf/ifstate.txt
calico-bpf-ipsets     | bpf                                       | calico-node -bpf ipsets dump                 | bpf/ipsets.txt
calico-bpf-conntrack  | bpf                                       | calico-node -bpf conntrack dump              | bpf/conntrack.txt
calico-bpf-nat        | bpf                                       | calico-node -bpf nat dump                    | bpf/nat.txt
calico-bpf-routes     | bpf                                       | calico-node -bpf routes dump                 | bpf/routes.txt
calico-bpf-counters   | bpf                                       | calico-node -bpf counters dump               | bpf/counters.txt
calico-bpf-policy     | bpf,each-iface                            | calico-node -bpf policy dump {IFACE} all     | bpf/policy-{IFACE}.txt
'

# Calico resource kinds for `cluster` mode: plural, and whether it is namespaced (calicoctl
# refuses -A for cluster-scoped kinds). Output: cluster/calico/<plural>.yaml.
CALICO_KINDS='
networkpolicies                 namespaced
globalnetworkpolicies           global
stagednetworkpolicies           namespaced
stagedglobalnetworkpolicies     global
stagedkubernetesnetworkpolicies namespaced
tiers                           global
workloadendpoints               namespaced
hostendpoints                   global
profiles                        global
networksets                     namespaced
globalnetworksets               global
felixconfigurations             global
ippools                         global
ipreservations                  global
nodes                           global
clusterinformations             global
bgpconfigurations               global
bgppeers                        global
kubecontrollersconfigurations   global
'

# Kubernetes kinds for `cluster` mode: cluster/k8s/<plural>.yaml.
K8S_KINDS='pods namespaces networkpolicies nodes services endpointslices serviceaccounts'

# What the node probe looks for. It runs once per node (through `kubectl exec` in cluster mode)
# and prints facts, one per line: "tool T", "module M", "file P", "bpf yes|no", "iface I".
# POSIX sh, so that it runs in any calico-node image.
# shellcheck disable=SC2016 # expanded by the sh that runs the probe, not here
PROBE_SH='
for t in "$@"; do command -v "$t" >/dev/null 2>&1 && echo "tool $t"; done
has_mod() {
  [ -e /proc/modules ] || return 0
  grep -q "^$1 " /proc/modules 2>/dev/null && return 0
  [ -d "/sys/module/$1" ] && return 0
  grep -qs "/$1\.ko" "/lib/modules/$(uname -r)/modules.builtin" && return 0
  return 1
}
for m in ip_set nf_tables nf_conntrack nf_conntrack_netlink; do has_mod "$m" && echo "module $m"; done
for f in /proc/net/ip_tables_names /proc/net/ip6_tables_names /proc/net/nf_conntrack /var/log/calico/felix/current; do
  [ -e "$f" ] && echo "file $f"
done
bpf=no
for f in /sys/fs/bpf/tc/globals/cali_*; do [ -e "$f" ] && bpf=yes && break; done
if [ "$bpf" = no ] && command -v bpftool >/dev/null 2>&1; then
  bpftool prog show 2>/dev/null | grep -q " name cali_" && bpf=yes
fi
echo "bpf $bpf"
for i in /sys/class/net/*; do [ -e "$i" ] && [ "${i##*/}" != lo ] && echo "iface ${i##*/}"; done
exit 0
'

# ---------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------
MODE=""
OUT_DIR="."
SINCE=""
MAX_LOG_BYTES=$((50 * 1024 * 1024))
NODES_FILTER=""
NAME=""
NODE_NAME=""
TIMEOUT_S=60
PARALLEL=4
CALICO_NODE_SELECTOR="k8s-app=calico-node"
CALICO_NODE_CONTAINER="calico-node"

usage() {
	cat <<EOF
Usage: ${0##*/} node|cluster [options]

Collects a Calico support bundle: calico-bundle-<name>-<UTC time>.tar.gz

Modes:
  node       run on a node as root (or in a privileged hostNetwork pod, or
             'kubectl debug node/<node> -it --profile=sysadmin --image=<image with iptables>')
  cluster    run with kubectl access; collects Calico and Kubernetes resources, calico-node
             logs, and runs the node commands in each calico-node pod through 'kubectl exec'

Options:
  --out DIR              where to write the bundle (default: current directory)
  --name NAME            bundle name (default: node name, or the kubectl context)
  --node NAME            node mode: name of this node (default: \$NODENAME, else the hostname)
  --nodes A,B            cluster mode: only these nodes (default: every calico-node pod)
  --since DURATION       only logs newer than this, e.g. 2h (kubectl logs / crictl logs --since)
  --max-log-bytes N      keep at most the last N bytes of each log (default: $MAX_LOG_BYTES;
                         K, M, G suffixes allowed)
  --timeout SECONDS      time limit for each command (default: $TIMEOUT_S; 0: none)
  --parallel N           cluster mode: nodes collected at the same time (default: $PARALLEL)
  -h, --help             this help

The collector only reads: no iptables or TRACE rules added, no kernel module loaded, nothing
written outside --out. What is collected and why: collector/README.md.
EOF
}

die() {
	printf '%s: %s\n' "${0##*/}" "$1" >&2
	exit 2
}

parse_size() {
	local v=$1 n mult=1
	case $v in
	*[kK]) n=${v%?} mult=1024 ;;
	*[mM]) n=${v%?} mult=$((1024 * 1024)) ;;
	*[gG]) n=${v%?} mult=$((1024 * 1024 * 1024)) ;;
	*) n=$v ;;
	esac
	[[ $n =~ ^[0-9]+$ ]] || die "not a size: $v"
	echo $((n * mult))
}

parse_args() {
	[[ $# -gt 0 ]] || {
		usage >&2
		exit 2
	}
	case $1 in
	-h | --help)
		usage
		exit 0
		;;
	node | cluster) MODE=$1 ;;
	*) die "unknown mode '$1' (expected node or cluster; -h for help)" ;;
	esac
	shift
	while [[ $# -gt 0 ]]; do
		local opt=$1 val=""
		case $opt in
		-h | --help)
			usage
			exit 0
			;;
		--*=*)
			val=${opt#*=}
			opt=${opt%%=*}
			;;
		--*)
			[[ $# -ge 2 ]] || die "option $opt needs a value"
			val=$2
			shift
			;;
		*) die "unexpected argument '$opt'" ;;
		esac
		shift
		case $opt in
		--out) OUT_DIR=$val ;;
		--name) NAME=$val ;;
		--node) NODE_NAME=$val ;;
		--nodes) NODES_FILTER=$val ;;
		--since) SINCE=$val ;;
		--max-log-bytes) MAX_LOG_BYTES=$(parse_size "$val") || exit 2 ;;
		--timeout)
			[[ $val =~ ^[0-9]+$ ]] || die "--timeout needs whole seconds"
			TIMEOUT_S=$val
			;;
		--parallel)
			[[ $val =~ ^[1-9][0-9]*$ ]] || die "--parallel needs a positive number"
			PARALLEL=$val
			;;
		*) die "unknown option $opt (-h for help)" ;;
		esac
	done
}

# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------

# Milliseconds since the epoch (bash 5 EPOCHREALTIME, else GNU date, else whole seconds).
now_ms() {
	if [[ -n ${EPOCHREALTIME:-} ]]; then
		local t=${EPOCHREALTIME/[.,]/}
		echo $((10#$t / 1000))
	else
		local t
		t=$(date +%s%N 2>/dev/null)
		if [[ $t =~ ^[0-9]+$ ]]; then echo $((t / 1000000)); else echo $(($(date +%s) * 1000)); fi
	fi
}

trim() {
	local s=$1
	s=${s#"${s%%[![:space:]]*}"}
	s=${s%"${s##*[![:space:]]}"}
	REPLY=$s
}

# JSON string literal of $1 in REPLY. Escapes what RFC 8259 requires; bytes >= 0x80 pass
# through (UTF-8 text stays UTF-8).
json_str() {
	local LC_ALL=C
	local s=$1
	s=${s//\\/\\\\}
	s=${s//\"/\\\"}
	s=${s//$'\n'/\\n}
	s=${s//$'\r'/\\r}
	s=${s//$'\t'/\\t}
	if [[ $s == *[$'\x01'-$'\x1f']* ]]; then
		local out="" ch i
		for ((i = 0; i < ${#s}; i++)); do
			ch=${s:i:1}
			if [[ $ch == [$'\x01'-$'\x1f'] ]]; then
				printf -v ch '\\u%04x' "'$ch"
			fi
			out+=$ch
		done
		s=$out
	fi
	REPLY="\"$s\""
}

# JSON array of strings from the arguments, in REPLY.
json_argv() {
	local out="" a
	for a in "$@"; do
		json_str "$a"
		out+="${out:+,}$REPLY"
	done
	REPLY="[$out]"
}

# File-name-safe form of $1 in REPLY.
safe_name() {
	local s=$1
	s=${s//[^A-Za-z0-9._-]/-}
	[[ -n $s ]] || s=unnamed
	# Never ".", ".." or a hidden name as a directory.
	[[ $s != .* ]] || s="_$s"
	REPLY=$s
}

file_bytes() {
	if [[ -f $1 ]]; then wc -c <"$1" | tr -d ' '; else echo 0; fi
}

have_local_tool() { command -v "$1" >/dev/null 2>&1; }

with_timeout() {
	if [[ -n $TIMEOUT_BIN && $TIMEOUT_S -gt 0 ]]; then
		"$TIMEOUT_BIN" --kill-after=5 "$TIMEOUT_S" "$@"
	else
		"$@"
	fi
}

# ---------------------------------------------------------------------------------------------
# Recording commands in the manifest. Each collection context (the cluster part, each node)
# appends JSON lines to its own file under $MANIFEST_PARTS, so parallel nodes never share one.
# ---------------------------------------------------------------------------------------------

# Where the current context records: set by the caller.
PART_FILE=""
CURRENT_NODE=""  # empty: cluster-level command (JSON null)
EXEC_VIA=()      # empty: run locally; else argv prefix, e.g. kubectl exec ... --
RAN_ARGV=()      # what a @function actually ran, for the manifest
LAST_RC=0        # exit code of the last run_cmd

node_json() {
	if [[ -n $CURRENT_NODE ]]; then json_str "$CURRENT_NODE"; else REPLY=null; fi
}

record_skip() { # name reason
	local name=$1 reason=$2 node
	node_json
	node=$REPLY
	json_str "$name"
	local jn=$REPLY
	json_str "$reason"
	printf '{"node":%s,"name":%s,"reason":%s}\n' "$node" "$jn" "$REPLY" >>"$PART_FILE.skipped"
}

# run_cmd NAME RELPATH ARGV... : run one command, write its output to the bundle, record it.
run_cmd() {
	local name=$1 rel=$2
	shift 2
	local out="$BUNDLE_DIR/$rel" err="$BUNDLE_DIR/$rel.stderr"
	mkdir -p "${out%/*}"
	local start rc timed_out=false
	RAN_ARGV=("$@")
	local via=()
	start=$(now_ms)
	if [[ $1 == @* ]]; then
		local fn=${1#@}
		"$fn" "${@:2}" </dev/null >"$out" 2>"$err"
		rc=$?
	elif ! tool_available "$1"; then
		local where=""
		[[ ${#EXEC_VIA[@]} -eq 0 ]] || where=" in the calico-node container"
		printf 'calico-collect: %s: command not found%s\n' "$1" "$where" >"$err"
		rc=127
	elif [[ ${#EXEC_VIA[@]} -gt 0 ]]; then
		via=("${EXEC_VIA[@]}")
		with_timeout "${EXEC_VIA[@]}" "$@" </dev/null >"$out" 2>"$err"
		rc=$?
	else
		with_timeout "$@" </dev/null >"$out" 2>"$err"
		rc=$?
	fi
	LAST_RC=$rc
	# A program that is not there leaves no output file, only the .stderr note.
	[[ $rc -eq 127 && ! -s $out ]] && rm -f "$out"
	local dur=$(($(now_ms) - start))
	[[ -n $TIMEOUT_BIN && $rc -eq 124 ]] && timed_out=true

	local bytes stderr_field=""
	bytes=$(file_bytes "$out")
	if [[ -s $err ]]; then
		json_str "$rel.stderr"
		stderr_field=",\"stderr_path\":$REPLY"
	else
		rm -f "$err"
	fi

	local node jname jargv jpath jvia=""
	node_json
	node=$REPLY
	json_str "$name"
	jname=$REPLY
	json_argv "${RAN_ARGV[@]}"
	jargv=$REPLY
	json_str "$rel"
	jpath=$REPLY
	if [[ ${#via[@]} -gt 0 ]]; then
		json_argv "${via[@]}"
		jvia=",\"via\":$REPLY"
	fi
	printf '{"node":%s,"name":%s,"argv":%s,"path":%s,"exit_code":%d,"duration_ms":%d%s,"bytes":%d%s%s}\n' \
		"$node" "$jname" "$jargv" "$jpath" "$rc" "$dur" "$stderr_field" "$bytes" "$jvia" \
		"$([[ $timed_out == true ]] && printf ',"timed_out":true')" >>"$PART_FILE"
	if [[ $rc -ne 0 ]]; then
		local first=""
		[[ -s $err ]] && first=$(head -n 1 "$err")
		printf '  %s%s: exit code %d%s%s\n' "${CURRENT_NODE:+$CURRENT_NODE }" "$name" "$rc" \
			"$([[ $timed_out == true ]] && printf ' (timed out)')" "${first:+: $first}" >>"$PART_FILE.failed"
	fi
	return 0
}

# Is the program available where commands run? Locally: PATH. In a pod: the probe's answer
# (when the probe could not run, assume yes and let the exit code tell).
declare -A FACT_TOOL=() FACT_MODULE=() FACT_FILE=()
FACT_BPF=no
FACT_IFACES=()
PROBE_OK=0

tool_available() {
	if [[ ${#EXEC_VIA[@]} -eq 0 ]]; then
		have_local_tool "$1"
	elif [[ $PROBE_OK -eq 1 ]]; then
		[[ -n ${FACT_TOOL[$1]+x} ]]
	else
		return 0
	fi
}

# ---------------------------------------------------------------------------------------------
# Node collection (shared by both modes)
# ---------------------------------------------------------------------------------------------

# Every program named in the table, for the probe.
table_tools() {
	local line name when cmd path
	local -A seen=()
	while IFS= read -r line; do
		[[ -n ${line//[[:space:]]/} ]] || continue
		IFS='|' read -r name when cmd path <<<"$line"
		trim "$cmd"
		cmd=${REPLY%% *}
		[[ $cmd == @* || -n ${seen[$cmd]+x} ]] && continue
		seen[$cmd]=1
		printf '%s\n' "$cmd"
	done <<<"$NODE_TABLE"
	[[ -n ${seen[crictl]+x} ]] || printf '%s\n' crictl
}

probe_node() { # relpath of the probe output
	local rel=$1 tools=()
	mapfile -t tools < <(table_tools)
	PROBE_OK=0
	run_cmd probe "$rel" sh -c "$PROBE_SH" probe "${tools[@]}"
	local out="$BUNDLE_DIR/$rel" rc=$LAST_RC
	FACT_TOOL=()
	FACT_MODULE=()
	FACT_FILE=()
	FACT_IFACES=()
	FACT_BPF=no
	PROBE_OK=0
	[[ $rc == 0 && -s $out ]] || return 0
	PROBE_OK=1
	local key val
	while read -r key val; do
		case $key in
		tool) FACT_TOOL[$val]=1 ;;
		module) FACT_MODULE[$val]=1 ;;
		file) FACT_FILE[$val]=1 ;;
		bpf) FACT_BPF=$val ;;
		iface) FACT_IFACES+=("$val") ;;
		esac
	done <"$out"
}

# Does condition list $1 hold? On failure REPLY says why.
conditions_hold() {
	local conds=$1 c
	local -a list
	IFS=',' read -ra list <<<"$conds"
	for c in "${list[@]}"; do
		trim "$c"
		c=$REPLY
		case $c in
		always | each-iface | "") ;;
		node-mode)
			[[ $MODE == node ]] || {
				REPLY="collected with kubectl in cluster mode"
				return 1
			}
			;;
		both-backends)
			if [[ $PROBE_OK -eq 1 ]] && ! [[ -n ${FACT_TOOL[iptables-legacy-save]+x} && -n ${FACT_TOOL[iptables-nft-save]+x} ]]; then
				REPLY="iptables-legacy-save and iptables-nft-save are not both installed"
				return 1
			fi
			;;
		module:*)
			if [[ $PROBE_OK -eq 1 && -z ${FACT_MODULE[${c#module:}]+x} ]]; then
				REPLY="kernel module ${c#module:} is not loaded (the collector does not load modules)"
				return 1
			fi
			;;
		no-module:*)
			if [[ $PROBE_OK -eq 0 || -n ${FACT_MODULE[${c#no-module:}]+x} ]]; then
				REPLY="kernel module ${c#no-module:} is loaded"
				return 1
			fi
			;;
		file:*)
			if [[ $PROBE_OK -eq 1 && -z ${FACT_FILE[${c#file:}]+x} ]]; then
				REPLY="${c#file:} does not exist"
				return 1
			fi
			;;
		no-file:*)
			if [[ $PROBE_OK -eq 0 || -n ${FACT_FILE[${c#no-file:}]+x} ]]; then
				REPLY="${c#no-file:} exists"
				return 1
			fi
			;;
		bpf)
			[[ $FACT_BPF == yes ]] || {
				REPLY="the node is not in eBPF mode"
				return 1
			}
			;;
		*)
			REPLY="unknown condition '$c'"
			return 1
			;;
		esac
	done
	return 0
}

expand_row() { # command-or-path iface -> REPLY
	local s=$1 iface=$2
	s=${s//\{MAX_LOG_BYTES\}/$MAX_LOG_BYTES}
	s=${s//\{IFACE\}/$iface}
	REPLY=$s
}

# Run the node table for the current node into nodes/<node>/.
collect_node_table() {
	local ndir="nodes/$NODE_DIR"
	probe_node "$ndir/collector-probe.txt"
	local line name when cmd path
	while IFS= read -r line; do
		[[ -n ${line//[[:space:]]/} ]] || continue
		IFS='|' read -r name when cmd path <<<"$line"
		trim "$name"
		name=$REPLY
		trim "$when"
		when=$REPLY
		trim "$cmd"
		cmd=$REPLY
		trim "$path"
		path=$REPLY
		if ! conditions_hold "$when"; then
			record_skip "$name" "$REPLY"
			continue
		fi
		local ifaces=("")
		[[ ,$when, == *,each-iface,* ]] && ifaces=("${FACT_IFACES[@]}")
		local iface
		for iface in "${ifaces[@]}"; do
			expand_row "$cmd" "$iface"
			local -a argv
			read -ra argv <<<"$REPLY"
			expand_row "$path" "$iface"
			run_cmd "$name" "$ndir/$REPLY" "${argv[@]}"
		done
	done <<<"$NODE_TABLE"
}

# Felix log when there is no svlogd file: the calico-node container's log via crictl.
felix_log_from_runtime() {
	if ! have_local_tool crictl; then
		RAN_ARGV=(crictl logs calico-node)
		echo "calico-collect: no /var/log/calico/felix/current and crictl not found" >&2
		return 127
	fi
	local id
	id=$(with_timeout crictl ps -a --name "$CALICO_NODE_CONTAINER" -q 2>/dev/null | head -n 1)
	if [[ -z $id ]]; then
		RAN_ARGV=(crictl ps -a --name "$CALICO_NODE_CONTAINER" -q)
		echo "calico-collect: no $CALICO_NODE_CONTAINER container found by crictl" >&2
		return 1
	fi
	local args=(crictl logs)
	[[ -n $SINCE ]] && args+=(--since "$SINCE")
	args+=("$id")
	RAN_ARGV=("${args[@]}" "|" tail -c "$MAX_LOG_BYTES")
	# crictl writes the container's stderr stream to its stderr; Felix logs to stderr.
	with_timeout "${args[@]}" 2>&1 | tail -c "$MAX_LOG_BYTES"
	return "${PIPESTATUS[0]}"
}

# calico-node log through kubectl, keeping the newest bytes.
kubectl_felix_log() { # namespace pod
	local args=(kubectl logs -n "$1" "$2" -c "$CALICO_NODE_CONTAINER")
	[[ -n $SINCE ]] && args+=("--since=$SINCE")
	RAN_ARGV=("${args[@]}" "|" tail -c "$MAX_LOG_BYTES")
	with_timeout "${args[@]}" | tail -c "$MAX_LOG_BYTES"
	return "${PIPESTATUS[0]}"
}

# ---------------------------------------------------------------------------------------------
# Modes
# ---------------------------------------------------------------------------------------------

NODES_DONE=()

mode_node() {
	local node=$NODE_NAME
	[[ -n $node ]] || node=${NODENAME:-}
	[[ -n $node ]] || node=$(cat /proc/sys/kernel/hostname 2>/dev/null || hostname 2>/dev/null)
	[[ -n $node ]] || node=node
	[[ $EUID -eq 0 ]] || echo "warning: not running as root; most node commands will fail" >&2
	safe_name "$node"
	NODE_DIR=$REPLY
	CURRENT_NODE=$node
	PART_FILE="$MANIFEST_PARTS/node-$NODE_DIR.jsonl"
	EXEC_VIA=()
	echo "collecting node $node"
	collect_node_table
	NODES_DONE+=("$node")
}

# Calico resources: calicoctl when it works, else kubectl (v3 API group when served, else CRDs).
collect_calico_resources() {
	local how=kubectl-crd line plural scope
	if have_local_tool calicoctl &&
		with_timeout calicoctl get clusterinformations -o yaml >/dev/null 2>&1; then
		how=calicoctl
	elif have_local_tool kubectl &&
		with_timeout kubectl api-resources --api-group=projectcalico.org -o name 2>/dev/null |
		grep -q '^networkpolicies\.projectcalico\.org$'; then
		how=kubectl-v3
	fi
	echo "collecting Calico resources ($how)"
	while read -r plural scope; do
		[[ -n $plural ]] || continue
		local rel="cluster/calico/$plural.yaml"
		case $how in
		calicoctl)
			if [[ $scope == namespaced ]]; then
				run_cmd "calico-$plural" "$rel" calicoctl get "$plural" -A -o yaml
			else
				run_cmd "calico-$plural" "$rel" calicoctl get "$plural" -o yaml
			fi
			;;
		kubectl-v3)
			run_cmd "calico-$plural" "$rel" kubectl get "$plural.projectcalico.org" -A -o yaml
			;;
		kubectl-crd)
			if [[ $plural == workloadendpoints ]]; then
				record_skip "calico-$plural" "workload endpoints are not CRDs; install calicoctl or the Calico API server (pods.yaml holds the same data)"
				continue
			fi
			run_cmd "calico-$plural" "$rel" kubectl get "$plural.crd.projectcalico.org" -A -o yaml
			;;
		esac
	done <<<"$CALICO_KINDS"
}

mode_cluster() {
	have_local_tool kubectl || die "cluster mode needs kubectl on PATH"
	CURRENT_NODE=""
	PART_FILE="$MANIFEST_PARTS/0-cluster.jsonl"
	EXEC_VIA=()
	run_cmd kubectl-version cluster/kubectl-version.txt kubectl version
	collect_calico_resources
	echo "collecting Kubernetes resources"
	local kind
	for kind in $K8S_KINDS; do
		run_cmd "k8s-$kind" "cluster/k8s/$kind.yaml" kubectl get "$kind" -A -o yaml
	done

	run_cmd calico-node-pods cluster/calico-node-pods.txt kubectl get pods -A -l "$CALICO_NODE_SELECTOR" \
		-o 'jsonpath={range .items[*]}{.metadata.namespace}{" "}{.metadata.name}{" "}{.spec.nodeName}{" "}{.status.phase}{"\n"}{end}'
	local -A wanted=()
	local n
	if [[ -n $NODES_FILTER ]]; then
		local -a list
		IFS=',' read -ra list <<<"$NODES_FILTER"
		for n in "${list[@]}"; do
			trim "$n"
			[[ -n $REPLY ]] && wanted[$REPLY]=1
		done
	fi

	local ns pod node phase running=0
	local -A seen=()
	while read -r ns pod node phase; do
		[[ -n $pod && -n $node ]] || continue
		if [[ ${#wanted[@]} -gt 0 && -z ${wanted[$node]+x} ]]; then continue; fi
		seen[$node]=1
		if [[ $phase != Running ]]; then
			CURRENT_NODE=$node
			record_skip node "calico-node pod $ns/$pod is $phase"
			CURRENT_NODE=""
			continue
		fi
		NODES_DONE+=("$node")
		collect_remote_node "$ns" "$pod" "$node" &
		running=$((running + 1))
		if [[ $running -ge $PARALLEL ]]; then
			wait -n
			running=$((running - 1))
		fi
	done <"$BUNDLE_DIR/cluster/calico-node-pods.txt"
	wait
	for n in "${!wanted[@]}"; do
		if [[ -z ${seen[$n]+x} ]]; then
			echo "warning: no calico-node pod found on node $n" >&2
			CURRENT_NODE=$n
			record_skip node "no calico-node pod found on this node"
			CURRENT_NODE=""
		fi
	done
}

# One node in cluster mode (runs in a background subshell).
collect_remote_node() {
	local ns=$1 pod=$2 node=$3
	safe_name "$node"
	NODE_DIR=$REPLY
	CURRENT_NODE=$node
	PART_FILE="$MANIFEST_PARTS/node-$NODE_DIR.jsonl"
	echo "collecting node $node (pod $ns/$pod)"
	EXEC_VIA=(kubectl exec -n "$ns" "$pod" -c "$CALICO_NODE_CONTAINER" --)
	collect_node_table
	EXEC_VIA=()
	run_cmd felix-log "nodes/$NODE_DIR/felix.log" @kubectl_felix_log "$ns" "$pod"
}

# ---------------------------------------------------------------------------------------------
# Manifest, archive, summary
# ---------------------------------------------------------------------------------------------

write_manifest() {
	local m="$BUNDLE_DIR/manifest.json" f first=1 n nodes=""
	local -a sorted
	mapfile -t sorted < <(printf '%s\n' "${NODES_DONE[@]}" | sort -u)
	for n in "${sorted[@]}"; do
		[[ -n $n ]] || continue
		json_str "$n"
		nodes+="${nodes:+,}$REPLY"
	done
	json_str "$COLLECTED_AT"
	local at=$REPLY
	json_str "$COLLECTOR_VERSION"
	local ver=$REPLY
	json_str "$MODE"
	local mode=$REPLY
	{
		printf '{"format":"calico-bundle/1","collected_at":%s,"collector_version":%s,"mode":%s,"nodes":[%s],\n"commands":[\n' \
			"$at" "$ver" "$mode" "$nodes"
		for f in "$MANIFEST_PARTS"/*.jsonl; do
			[[ -f $f ]] || continue
			while IFS= read -r line; do
				if [[ $first -eq 1 ]]; then first=0; else printf ',\n'; fi
				printf '%s' "$line"
			done <"$f"
		done
		printf '\n],\n"skipped":[\n'
		first=1
		for f in "$MANIFEST_PARTS"/*.jsonl.skipped; do
			[[ -f $f ]] || continue
			while IFS= read -r line; do
				if [[ $first -eq 1 ]]; then first=0; else printf ',\n'; fi
				printf '%s' "$line"
			done <"$f"
		done
		printf '\n]}\n'
	} >"$m"
}

print_summary() {
	local total=0 failed=0 f
	for f in "$MANIFEST_PARTS"/*.jsonl; do
		[[ -f $f ]] || continue
		total=$((total + $(wc -l <"$f")))
	done
	for f in "$MANIFEST_PARTS"/*.jsonl.failed; do
		[[ -f $f ]] || continue
		failed=$((failed + $(wc -l <"$f")))
	done
	echo "wrote $1"
	echo "  $total commands, $failed failed (details in manifest.json and the .stderr files)"
	for f in "$MANIFEST_PARTS"/*.jsonl.failed; do
		[[ -f $f ]] && cat "$f"
	done
	return 0
}

WORK_DIR=""
cleanup() {
	local pids
	pids=$(jobs -p)
	# shellcheck disable=SC2086 # one pid per word
	[[ -z $pids ]] || kill $pids 2>/dev/null
	[[ -z $WORK_DIR ]] || rm -rf "$WORK_DIR"
}

main() {
	parse_args "$@"
	TIMEOUT_BIN=""
	have_local_tool timeout && TIMEOUT_BIN=$(command -v timeout)
	have_local_tool tar || die "tar not found"
	have_local_tool gzip || die "gzip not found"

	mkdir -p "$OUT_DIR" || die "cannot create $OUT_DIR"
	if [[ -z $NAME ]]; then
		if [[ $MODE == node ]]; then
			NAME=${NODE_NAME:-${NODENAME:-$(cat /proc/sys/kernel/hostname 2>/dev/null || echo node)}}
		else
			NAME=$(kubectl config current-context 2>/dev/null || true)
			[[ -n $NAME ]] || NAME=cluster
		fi
	fi
	safe_name "$NAME"
	local ts
	ts=$(date -u +%Y%m%dT%H%M%SZ)
	COLLECTED_AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)
	BUNDLE_REL="calico-bundle-$REPLY-$ts"

	trap cleanup EXIT
	trap 'exit 130' INT TERM
	WORK_DIR=$(mktemp -d "$OUT_DIR/.calico-collect.XXXXXX") || die "cannot create a temporary directory in $OUT_DIR"
	BUNDLE_DIR="$WORK_DIR/$BUNDLE_REL"
	MANIFEST_PARTS="$WORK_DIR/manifest.parts"
	mkdir -p "$BUNDLE_DIR" "$MANIFEST_PARTS"

	case $MODE in
	node) mode_node ;;
	cluster) mode_cluster ;;
	esac

	write_manifest
	local tarball="$OUT_DIR/$BUNDLE_REL.tar.gz"
	tar -C "$WORK_DIR" -czf "$WORK_DIR/bundle.tar.gz" "$BUNDLE_REL" || die "tar failed"
	mv "$WORK_DIR/bundle.tar.gz" "$tarball" || die "cannot write $tarball"
	print_summary "$tarball"
}

main "$@"
