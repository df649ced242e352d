# Worst-case stack depth from GCC's call graphs (-fcallgraph-info=su, one .ci
# file per object): the deepest chain of static frames from the roots given
# with -v roots="main Reset_Handler". Calls through function pointers
# (__indirect_call) and functions without a frame size (library code built
# without -fcallgraph-info: newlib, libgcc) count 0 and are listed.
# Static functions are titled "path/file.c:name"; shown as "file.c:name".
function short(f) { sub(/^.*\//, "", f); return f }
/^node: / {
    t = $0; sub(/.*title: "/, "", t); sub(/".*/, "", t)
    if (match($0, /\\n[0-9]+ bytes/)) {
        n = substr($0, RSTART + 2, RLENGTH - 2); sub(/ bytes/, "", n)
        if (!(t in frame) || n + 0 > frame[t]) frame[t] = n + 0
        if ($0 ~ /dynamic/) dyn[t] = 1
    }
    next
}
/^edge: / {
    s = $0; sub(/.*sourcename: "/, "", s); sub(/".*/, "", s)
    d = $0; sub(/.*targetname: "/, "", d); sub(/".*/, "", d)
    if (!((s SUBSEP d) in seen_edge)) {
        seen_edge[s, d] = 1
        callees[s] = callees[s] " " d
    }
}
function depth(f,  n, i, c, best, bc, v) {
    if (f in memo) return memo[f]
    if (f in busy) { recursive[f] = 1; return 0 }
    busy[f] = 1
    best = 0; bc = ""
    n = split(callees[f], c, " ")
    for (i = 1; i <= n; i++) {
        if (c[i] == "__indirect_call") { indirect[f] = 1; continue }
        if (!(c[i] in frame) && !(c[i] in callees)) { unknown[c[i]] = 1; continue }
        v = depth(c[i])
        if (v > best) { best = v; bc = c[i] }
    }
    delete busy[f]
    next_on_path[f] = bc
    memo[f] = (f in frame ? frame[f] : 0) + best
    return memo[f]
}
END {
    nr = split(roots, r, " ")
    for (i = 1; i <= nr; i++) {
        if (!(r[i] in frame)) continue
        total = depth(r[i])
        printf "  %s: %d bytes:", r[i], total
        for (f = r[i]; f != ""; f = next_on_path[f])
            printf " %s(%d)", short(f), frame[f]
        printf "\n"
    }
    s = ""; k = 0
    for (f in indirect) if (f in memo) { if (++k <= 6) s = s " " short(f) }
    if (k) printf "  %d functions call through pointers (HAL, callbacks, allocators; not followed:" \
        " add the callee's frame), e.g.%s\n", k, s
    s = ""
    for (f in recursive) s = s " " short(f)
    if (s != "") print "  recursion (each level adds its frame again; counted once):" s
    s = ""
    for (f in dyn) if (f in memo) s = s " " short(f)
    if (s != "") print "  dynamic frames (alloca/VLA):" s
}
