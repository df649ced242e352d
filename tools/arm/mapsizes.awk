# Sums a GNU ld map file (-Wl,-Map) per input file: bytes kept in flash
# (.isr_vector .text .ARM.ex* .data's load image), in RAM (.data .bss) and
# bytes dropped by --gc-sections ("Discarded input sections").
#
# Input section lines look like " .text.foo  0xADDR  0xSIZE  lib.a(obj.o)";
# a long section name moves address, size and file to the next line.
# With -v by=object, archive members are listed one by one (lib.a(obj.o) -> obj.o).
function hex(s,  i, n) {
    sub(/^0x/, "", s)
    n = 0
    for (i = 1; i <= length(s); i++)
        n = n * 16 + index("0123456789abcdef", tolower(substr(s, i, 1))) - 1
    return n
}
function add(sec, size, file,  lib, n) {
    n = hex(size)
    if (n == 0)
        return
    lib = file
    if (by == "object" && lib ~ /[(]/) { sub(/^[^(]*[(]/, "", lib); sub(/[)]$/, "", lib) }
    sub(/[(].*/, "", lib)
    sub(/.*\//, "", lib)
    if (lib == "") lib = "(alignment fill)"
    seen[lib] = 1
    if (part == "discarded") {
        if (sec ~ /^[.](text|rodata|data|bss)/) drop[lib] += n
        return
    }
    if (out ~ /^[.](isr_vector|text|ARM[.]extab|ARM[.]exidx|data)$/) fl[lib] += n
    if (out ~ /^[.](data|bss)$/) ram[lib] += n
}
/^Discarded input sections/      { part = "discarded"; next }
/^Memory Configuration/          { part = ""; next }
/^Linker script and memory map/  { part = "map"; next }
part == "" { next }
/^[.][A-Za-z_]/ { out = $1; pend = ""; next }
/^ [*]fill[*]/ { if (part == "map") add("fill", $3, ""); next }
/^ [.A-Za-z_]/ {
    if (NF == 1) { pend = $1; next }
    if ($2 ~ /^0x/ && $3 ~ /^0x/) add($1, $3, $4)
    pend = ""
    next
}
/^                0x/ && pend != "" {
    if ($2 ~ /^0x/) add(pend, $2, $3)
    pend = ""
}
END {
    for (l in seen)
        if (fl[l] + ram[l] + drop[l] > 0)
            printf "  %-30s %8d %8d %10d\n", l, fl[l], ram[l], drop[l]
}
