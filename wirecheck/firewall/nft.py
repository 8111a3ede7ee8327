"""``nft -j list ruleset`` into chains."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from .iptables import _const
from .model import (
    _CUTS,
    IPT_HOOKS,
    MAYBE,
    SOME,
    SOURCE,
    Action,
    Chain,
    Cond,
    Judged,
    Packet,
    Rule,
    UnreadableRuleset,
    _addr,
    _net,
    _order,
    _ranges_add,
    _some_all,
)

# ------------------------------------------------------------------------------------------------
# nft -j list ruleset


def _nft_scalar_match(value: Any, right: Any, sets: dict[str, list[Any]]) -> bool | None:
    """value against an nft right-hand side; None when the right side is not understood."""
    if isinstance(right, str) and right.startswith("@"):
        elems = sets.get(right[1:])
        if elems is None:
            return None
        return _nft_scalar_match(value, {"set": elems}, sets)
    if isinstance(right, dict):
        if "set" in right:
            results = [_nft_scalar_match(value, el, sets) for el in right["set"]]
            if any(r is True for r in results):
                return True
            return None if any(r is None for r in results) else False
        if "range" in right:
            lo, hi = right["range"]
            if isinstance(value, int) and isinstance(lo, int) and isinstance(hi, int):
                return lo <= value <= hi
            if isinstance(value, str) and isinstance(lo, str):
                try:
                    return ipaddress.ip_address(lo) <= ipaddress.ip_address(value) <= ipaddress.ip_address(hi)
                except (ValueError, TypeError):
                    return None
            return None
        if "prefix" in right:
            try:
                net = _net(f"{right['prefix']['addr']}/{right['prefix']['len']}")
            except (TypeError, KeyError):
                return None
            a = _addr(str(value))
            if net is None or a is None:
                return None
            return a.version == net.version and a in net
        if "elem" in right:
            return _nft_scalar_match(value, right["elem"].get("val"), sets)
        return None
    if isinstance(right, list):
        return _nft_scalar_match(value, {"set": right}, sets)
    if isinstance(right, str) and isinstance(value, str):
        if right.endswith("*"):
            return value.startswith(right[:-1])
        return right == value
    if isinstance(right, (int, str)) and isinstance(value, (int, str)):
        if isinstance(right, str) and isinstance(value, int):
            # a port as text: a number compares, a service name ("http") is not resolved here
            return int(right) == value if right.isdigit() else None
        return right == value
    return None


def _collect_port_cuts(right: Any, sets: dict[str, list[Any]], cuts: set[int]) -> None:
    if isinstance(right, bool):
        return
    if isinstance(right, int):
        _ranges_add(cuts, right, right)
    elif isinstance(right, str) and right.startswith("@"):
        for el in sets.get(right[1:], []):
            _collect_port_cuts(el, sets, cuts)
    elif isinstance(right, dict):
        if "range" in right and all(isinstance(x, int) for x in right["range"]):
            _ranges_add(cuts, right["range"][0], right["range"][1])
        elif "set" in right:
            for el in right["set"]:
                _collect_port_cuts(el, sets, cuts)
        elif "elem" in right:
            _collect_port_cuts(right["elem"].get("val"), sets, cuts)
    elif isinstance(right, list):
        for el in right:
            _collect_port_cuts(el, sets, cuts)


_L4 = {"tcp", "udp", "udplite", "sctp", "dccp"}


def _nft_key(left: Any) -> Callable[[Packet], Any] | str:
    """A function giving the packet's value for an nft expression, or a kind word (source/some) or
    the text of what is not modelled ('?...')."""
    if isinstance(left, dict) and "payload" in left:
        pl = left["payload"]
        proto, fld = pl.get("protocol"), pl.get("field")
        if proto in _L4 | {"th"} and fld == "dport":
            def dport(p: Packet, proto: str = proto) -> Any:
                if proto != "th" and p.proto != proto:
                    return _NOT_THIS_PROTO
                if p.proto not in ("tcp", "udp"):
                    return _NOT_THIS_PROTO
                return p.port
            return dport
        if proto in _L4 | {"th"} and fld == "sport":
            return "source-port:" + str(proto)
        if proto in ("ip", "ip6") and fld == "saddr":
            return "source"
        if proto in ("ip", "ip6") and fld == "daddr":
            return "daddr"
        if proto == "ip" and fld == "protocol" or proto == "ip6" and fld == "nexthdr":
            return lambda p: p.proto
        if proto in _L4 | {"icmp", "icmpv6", "igmp", "esp", "ah", "comp"}:
            return "l4:" + str(proto)       # a header of another protocol: no match for tcp/udp packets
        return f"?{proto} {fld}"
    if isinstance(left, dict) and "meta" in left:
        key = left["meta"].get("key")
        if key == "l4proto":
            return lambda p: p.proto
        if key == "nfproto":
            return lambda p: {"ip": "ipv4", "ip6": "ipv6"}.get(p.family, p.family)
        if key == "protocol":
            return lambda p: p.family         # `meta protocol` names ip, ip6, arp as the families are named
        if key in ("iifname", "iif", "oifname", "oif", "ibrname", "ibriport", "obrname", "obriport"):
            return "iface:" + key
        if key == "pkttype":
            return lambda p: "host"
        return f"?meta {key}"
    if isinstance(left, dict) and "ct" in left:
        key = left["ct"].get("key")
        if key == "state":
            return lambda p: p.ct
        return f"?ct {key}"
    if isinstance(left, dict) and "fib" in left:
        fib = left["fib"]
        flags, result = set(fib.get("flags", [])), fib.get("result")
        if result == "type" and "daddr" in flags:
            return lambda p: "local" if p.path == "in" else "unicast"
        if result in ("oif", "oifname") and "saddr" in flags:
            return "fib-rpf"
        return f"?fib {result} {','.join(sorted(flags))}"
    for op in ("&", "|", "^", "<<", ">>"):
        if isinstance(left, dict) and isinstance(left.get(op), list) and left[op]:
            inner = _nft_key(left[op][0])
            return inner if isinstance(inner, str) and inner.startswith("l4:") else f"?{op}"
    if isinstance(left, dict) and ("numgen" in left or "jhash" in left or "symhash" in left):
        return "some"
    if isinstance(left, dict):
        return "?" + next(iter(left), "expression")
    return f"?{left}"


_NOT_THIS_PROTO = object()


def _nft_match(m: dict[str, Any], family: str, sets: dict[str, list[Any]], cuts: set[int]) -> Cond:
    left, right, op = m.get("left"), m.get("right"), m.get("op", "==")
    key = _nft_key(left)
    neg = op == "!="
    shown = _nft_expr_text(m)
    if isinstance(key, str):
        if key.startswith("?"):
            return _const(Judged(MAYBE, shown))
        if key == "source":
            def src(p: Packet) -> bool | Judged:
                if p.path == "out":
                    return _eval_addr(p, right, sets, neg, shown)
                return Judged(SOURCE, f"{shown} (only some sources)")
            return src
        if key.startswith("source-port:"):
            proto = key.split(":", 1)[1]
            return lambda p: False if proto not in ("th", p.proto) else Judged(SOURCE, f"{shown} (only some client ports)")
        if key == "daddr":
            def dst(p: Packet) -> bool | Judged:
                if p.path == "out":
                    return Judged(SOURCE, shown)
                return _eval_addr(p, right, sets, neg, shown)
            return dst
        if key == "some":
            return _const(Judged(SOME, f"{shown} (only some packets)"))
        if key.startswith("l4:"):
            # nft adds `meta l4proto <proto>` to a match on that protocol's header
            return lambda p, proto=key[3:]: False if p.proto != proto else Judged(MAYBE, shown)
        if key == "fib-rpf":
            # `fib saddr . iif oif missing drop`: legitimate clients have a route back
            return _const(Judged(MAYBE, shown)) if op not in ("==", "!=") else _const(neg)
        if key.startswith("iface:"):
            meta = key[6:]

            def iface(p: Packet, meta: str = meta) -> bool | Judged:
                if meta.startswith(("o",)):
                    if p.path == "in":
                        return neg if op in ("==", "!=") else Judged(MAYBE, shown)
                    return Judged(MAYBE, f"{shown} (the outgoing interface is not modelled)")
                if p.path == "out":
                    return neg
                names = p.l2_ifaces if family in ("bridge", "netdev") else p.l3_ifaces
                if meta in ("ibrname",):
                    names = p.l3_ifaces
                if op not in ("==", "!=", "in"):
                    return Judged(MAYBE, shown)
                if isinstance(right, int):
                    return Judged(MAYBE, f"{shown} (interface index)")
                got = _some_all(names, lambda n: bool(_nft_scalar_match(n, right, sets)), shown)
                return (not got) if isinstance(got, bool) and neg else got
            return iface
    fn = key
    if "payload" in (left or {}) and left["payload"].get("field") == "dport":
        _collect_port_cuts(right, sets, cuts)

    def cond(p: Packet) -> bool | Judged:
        value = fn(p)
        if value is _NOT_THIS_PROTO:
            return False
        if op in ("==", "!=", "in"):
            if isinstance(value, str) and isinstance(right, list):
                got = value in right
            else:
                got = _nft_scalar_match(value, right, sets)
            if got is None:
                return Judged(MAYBE, shown)
            return got != neg
        if op in ("<", ">", "<=", ">=") and isinstance(value, int) and isinstance(right, int):
            return {"<": value < right, ">": value > right, "<=": value <= right, ">=": value >= right}[op]
        return Judged(MAYBE, shown)
    return cond


def _eval_addr(p: Packet, right: Any, sets: dict[str, list[Any]], neg: bool, shown: str) -> bool | Judged:
    if p.local_addresses is None:
        return Judged(MAYBE, f"{shown} (the host's addresses are not known)")
    results = [_nft_scalar_match(a, right, sets) for a in p.local_addresses]
    if any(r is None for r in results):
        return Judged(MAYBE, shown)
    if results and all(results):
        return not neg
    if not any(results):
        return neg
    return Judged(MAYBE, f"{shown} (true for some of the host's addresses only)")


def _nft_value_text(v: Any) -> str:
    if isinstance(v, dict):
        if "range" in v:
            return "-".join(str(x) for x in v["range"])
        if "set" in v:
            return "{ " + ", ".join(_nft_value_text(x) for x in v["set"]) + " }"
        if "prefix" in v:
            return f"{v['prefix'].get('addr')}/{v['prefix'].get('len')}"
        if "payload" in v:
            p = v["payload"]
            if "protocol" in p:
                return f"{p.get('protocol')} {p.get('field')}"
            return f"@{p.get('base')},{p.get('offset')},{p.get('len')}"
        if "meta" in v:
            return f"meta {v['meta'].get('key')}"
        if "ct" in v:
            return f"ct {v['ct'].get('key')}"
        if "fib" in v:
            return f"fib {' . '.join(v['fib'].get('flags', []))} {v['fib'].get('result')}"
        if "numgen" in v:
            g = v["numgen"]
            return f"numgen {g.get('mode')} mod {g.get('mod')}"
        if "elem" in v:
            return _nft_value_text(v["elem"].get("val"))
        if "concat" in v:
            return " . ".join(_nft_value_text(x) for x in v["concat"])
        if "&" in v:
            a, b = v["&"]
            return f"{_nft_value_text(a)} & {_nft_value_text(b)}"
        k = next(iter(v), "")
        return f"{k} {v[k]}" if k else "{}"
    if isinstance(v, list):
        if len(v) == 2 and isinstance(v[1], dict) and len(v[1]) == 1 and next(iter(v[1])) in _VERDICTS:
            return f"{_nft_value_text(v[0])} : {_nft_verdict_text(v[1])}"
        return "{ " + ", ".join(_nft_value_text(x) for x in v) + " }"
    return str(v)


def _nft_expr_text(m: dict[str, Any]) -> str:
    op = m.get("op", "==")
    return f"{_nft_value_text(m.get('left'))} {'' if op in ('==', 'in') else op + ' '}{_nft_value_text(m.get('right'))}"


_VERDICTS = ("accept", "drop", "reject", "return", "jump", "goto", "continue", "queue")


def _nft_verdict_text(v: dict[str, Any]) -> str:
    k = next(iter(v))
    if k in ("jump", "goto"):
        return f"{k} {v[k].get('target')}"
    return k


def _nft_stmt_text(e: dict[str, Any]) -> str:
    if "match" in e:
        return _nft_expr_text(e["match"])
    k = next(iter(e), "")
    if k in _VERDICTS:
        return _nft_verdict_text(e)
    if k == "vmap":
        return f"{_nft_value_text(e[k].get('key'))} vmap {_nft_value_text(e[k].get('data'))}"
    if k == "xt":
        return f"xt {e[k].get('type')} {e[k].get('name')}"
    if k == "limit":
        lim = e[k]
        return f"limit rate {'over ' if lim.get('inv') else ''}{lim.get('rate')}/{lim.get('per')}"
    return k


def _verdict_action(v: dict[str, Any], prefix: str) -> Action:
    k = next(iter(v))
    if k in ("jump", "goto"):
        return Action(k, target=prefix + str(v[k].get("target")))
    if k in ("accept", "drop", "reject", "return", "continue"):
        return Action(k)
    return Action("unknown", what=_nft_verdict_text(v))


#: nft statements that never end a packet's way through a chain
NFT_NONTERMINAL = {"counter", "log", "ct helper", "mangle", "meta", "ct", "set", "map", "notrack", "dup",
                   "flow", "secmark", "ct timeout", "ct expectation", "last", "xt_target_nonterminal",
                   "synproxy"}
NFT_NAT = {"dnat", "snat", "masquerade", "redirect"}


def _nft_rule(r: dict[str, Any], chain: Chain, sets: dict[str, list[Any]], cuts: set[int],
              prefix: str) -> Rule:
    exprs = r.get("expr", [])
    text = (f"nft: {chain.label} handle {r.get('handle')}: " + " ".join(_nft_stmt_text(e) for e in exprs)
            + (f" comment \"{r['comment']}\"" if r.get("comment") else ""))
    rule = Rule(text=text)
    for e in exprs:
        if rule.action.kind != "continue":
            break               # statements after a verdict are never reached
        k = next(iter(e), "")
        if k == "match":
            rule.conds.append((_nft_expr_text(e["match"]), _nft_match(e["match"], chain.family, sets, cuts)))
            left = e["match"].get("left")
            if e["match"].get("op", "==") == "==" and isinstance(left, dict):
                if left.get("payload", {}).get("protocol") in _L4:
                    rule.l4 = left["payload"]["protocol"]
                elif left.get("meta", {}).get("key") == "l4proto" and isinstance(e["match"].get("right"), str):
                    rule.l4 = e["match"]["right"]
        elif k in ("limit", "quota") or k == "ct count":
            rule.conds.append((_nft_stmt_text(e), _const(Judged(SOME, f"{_nft_stmt_text(e)} (only some packets)"))))
        elif k in _VERDICTS:
            rule.action = _verdict_action(e, prefix)
        elif k == "vmap":
            vm = e["vmap"]
            key_expr, data = vm.get("key"), vm.get("data")
            if isinstance(data, str) and data.startswith("@"):
                elements = sets.get(data[1:])
            elif isinstance(data, dict) and "set" in data:
                elements = data["set"]
            else:
                elements = None
            shown = _nft_stmt_text(e)
            if elements is None:
                rule.action = Action("unknown", what=shown)
                continue
            pairs = []
            for el in elements:
                if isinstance(el, list) and len(el) == 2 and isinstance(el[1], dict):
                    pairs.append((el[0], _verdict_action(el[1], prefix)))
                    if isinstance(key_expr, dict) and key_expr.get("payload", {}).get("field") == "dport":
                        _collect_port_cuts(el[0], sets, cuts)
                else:
                    pairs.append((None, Action("unknown", what=shown)))
            rule.action = Action("vmap", vmap=(key_expr, pairs, shown))
        elif k in NFT_NAT:
            rule.action = Action("nat", what=k)
        elif k == "xt":
            xt = e["xt"]
            rule.conds.append((f"xt {xt.get('name')}", _const(Judged(
                MAYBE, f"iptables match/target '{xt.get('name')}' (xt {xt.get('type')}; its options are only shown "
                       "by iptables-nft-save)"))))
            if xt.get("type") == "target":
                rule.action = Action("unknown", what=f"iptables target {xt.get('name')}")
        elif k in NFT_NONTERMINAL:
            continue
        else:
            # queue, fwd, tproxy, synproxy... : the packet may end here with a verdict we do not model
            rule.action = Action("unknown", what=_nft_stmt_text(e))
    return _order(rule)


def _nft_set_elements(s: dict[str, Any]) -> list[Any]:
    """A set's or map's elements as a list (an element with options stays wrapped in {"elem": ...}, which
    the matchers read)."""
    elems = s.get("elem", [])
    return elems if isinstance(elems, list) else [elems]


def parse_nft_json(ruleset: dict[str, Any], replace: dict[str, dict[str, Chain]] | None = None) -> dict[str, Chain]:
    """Every chain of every table and family, keyed ``nftables|family|table|chain``.

    replace maps "family|table" of a table that iptables-nft manages to the chains parsed from
    iptables-nft-save; where a chain's rule count agrees, each rule holding an opaque ``xt`` expression
    takes its iptables-nft-save line (which carries the options nft does not show)."""
    items = ruleset.get("nftables") if isinstance(ruleset, dict) else None
    if not isinstance(items, list):
        raise UnreadableRuleset("the output of `nft -j list ruleset` has no 'nftables' list")
    sets: dict[str, dict[str, list[Any]]] = {}
    for item in items:
        for kind in ("set", "map"):
            if kind in item:
                s = item[kind]
                elems = _nft_set_elements(s)
                sets.setdefault(f"{s.get('family')}|{s.get('table')}", {})[str(s.get("name"))] = elems
    chains: dict[str, Chain] = {}
    managed = _managed_tables(items, replace or {})
    for item in items:
        if "chain" in item:
            c = item["chain"]
            key = f"nftables|{c.get('family')}|{c.get('table')}|{c.get('name')}"
            chain = Chain(key, str(c.get("name")), str(c.get("family")), str(c.get("table")),
                          "iptables" if f"{c.get('family')}|{c.get('table')}" in managed else "nftables")
            if c.get("hook"):
                chain.hook = str(c["hook"])
                prio = c.get("prio", 0)
                chain.prio = prio if isinstance(prio, int) else _NAMED_PRIO.get(str(prio), 0)
                chain.type = str(c.get("type", "filter"))
                chain.policy = str(c.get("policy", "accept"))
                dev = c.get("dev") or c.get("devices")
                if dev:
                    chain.devices = [dev] if isinstance(dev, str) else list(dev)
            chains[key] = chain
    for item in items:
        if "rule" not in item:
            continue
        r = item["rule"]
        fam_table = f"{r.get('family')}|{r.get('table')}"
        key = f"nftables|{fam_table}|{r.get('chain')}"
        chain = chains.get(key)
        if chain is None:
            continue
        chain.rules.append(_nft_rule(r, chain, sets.get(fam_table, {}), _CUTS, f"nftables|{fam_table}|"))
    if replace:
        for chain in chains.values():
            ipt = replace.get(f"{chain.family}|{chain.table}", {}).get(chain.name)
            if ipt is None:
                continue
            if len(ipt.rules) != len(chain.rules):
                continue        # rules cannot be paired: xt expressions stay "cannot judge"
            for n, rule in enumerate(chain.rules):
                if any(t.startswith("xt ") for t, _ in rule.conds) or rule.action.kind == "unknown" and \
                        rule.action.what.startswith("iptables target"):
                    new = ipt.rules[n]
                    _rekey(new, f"nftables|{chain.family}|{chain.table}|")
                    chain.rules[n] = new
                elif chain.source == "iptables":
                    rule.text = ipt.rules[n].text      # the operator's own syntax, same rule
    return chains


def _managed_tables(items: list[dict[str, Any]], replace: dict[str, dict[str, Chain]]) -> set[str]:
    """family|table of the tables iptables-nft made: iptables-nft-save printed them and every base
    chain carries the builtin name, hook and priority iptables gives it (a native nft table that only
    shares the name, e.g. `table ip filter { chain input ... }`, is read as nftables)."""
    managed = set()
    for ft, ipt_chains in replace.items():
        table = ft.split("|", 1)[1]
        builtin = IPT_HOOKS.get(table)
        if builtin is None:
            continue
        ok = True
        for item in items:
            c = item.get("chain")
            if not c or f"{c.get('family')}|{c.get('table')}" != ft:
                continue
            if c.get("name") not in ipt_chains:
                ok = False
            if c.get("hook") and (builtin.get(str(c.get("name"))) or (None, None))[0] != c.get("hook"):
                ok = False
        if ok:
            managed.add(ft)
    return managed


def _rekey(rule: Rule, prefix: str) -> None:
    if rule.action.target:
        rule.action.target = prefix + rule.action.target.rsplit("|", 1)[-1]


_NAMED_PRIO = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100,
               "out": 100}


