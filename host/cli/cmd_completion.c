/*
 * penlink completion bash|zsh|fish: the shell's completion script, written
 * from the command table (cli_commands: commands, subcommands and their
 * getopt_long tables) and the global options, so that a command or option
 * added there completes without anyone touching a script. The build writes
 * the three scripts with this command and installs them.
 *
 * Each script finds the command (the first word that is neither an option
 * nor an option's value) and its subcommand, then offers the command's
 * subcommands, its options (long and short) and the global ones, the values
 * of an option that has a fixed set (option_values), or file names (after
 * another option that takes a value, and for arguments).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "Usage: penlink completion bash|zsh|fish|words\n"
    "\n"
    "Print the completion script of that shell for penlink, made from the same\n"
    "table as `penlink --help`. The packages install them; by hand, e.g.:\n"
    "  penlink completion bash > ~/.local/share/bash-completion/completions/penlink\n"
    "  penlink completion zsh > ~/.zfunc/_penlink     (a directory in $fpath)\n"
    "  penlink completion fish > ~/.config/fish/completions/penlink.fish\n"
    "words prints the table itself, a line per word: COMMAND, COMMAND SUBCOMMAND,\n"
    "COMMAND --OPTION (and COMMAND -O, its short form), and --OPTION (-O) for the\n"
    "global options. An option with a set of values (--format, --report, --by)\n"
    "completes them, --tz the time zone names.\n";

/* The options whose value is one of a set (and --tz: a zone name), by command:
 * what their command's --help lists (test_completion.sh holds them to it). */
struct option_values {
    const char *cmd, *opt;
    const char *values; /* NULL: a time zone name */
};
static const struct option_values option_values[] = {
    { "decode", "format", "text csv json" },
    { "audit", "format", "table csv json html" },
    { "audit", "report", "treatments cartridges integrity usage all" },
    { "audit", "by", "day week month" },
    { "audit", "tz", NULL },
    { "export", "format", "csv json" },
    { "export", "tz", NULL },
    { NULL, NULL, NULL },
};

/* The short option letter of @p o, or 0. */
static int short_of(const struct option *o)
{
    return !o->flag && o->val > 0 && o->val < 128 && isalnum(o->val) ? o->val : 0;
}

/* @p o of @p cmd's table, or NULL. */
static const struct option *find_option(const struct cli_command *cmd, const char *name)
{
    for (const struct option *const *t = cmd->options; t && *t; t++)
        for (const struct option *o = *t; o->name; o++)
            if (strcmp(o->name, name) == 0)
                return o;
    return NULL;
}

/* 1 when a global option has the name of @p o: offered with the globals. */
static int is_global(const struct option *o)
{
    for (const struct option *g = cli_global_options; g->name; g++)
        if (strcmp(g->name, o->name) == 0)
            return 1;
    return 0;
}

/* 1 when an option of that name comes before @p o in @p tables (subcommands
 * share --help and others: each is offered once). */
static int named_before(const struct option *const *tables, const struct option *o)
{
    for (; *tables; tables++) {
        for (const struct option *p = *tables; p->name; p++) {
            if (p == o)
                return 0;
            if (strcmp(p->name, o->name) == 0)
                return 1;
        }
    }
    return 0;
}

/* A space-separated list of "--name" (and "-x") of every option in @p
 * tables; a command's (@p no_globals) without those the globals offer. */
static void put_options(FILE *f, const struct option *const *tables, int no_globals)
{
    const char *sep = "";
    for (const struct option *const *t = tables; t && *t; t++) {
        for (const struct option *o = *t; o->name; o++) {
            if (named_before(tables, o) || (no_globals && is_global(o)))
                continue;
            fprintf(f, "%s--%s", sep, o->name);
            if (short_of(o))
                fprintf(f, " -%c", short_of(o));
            sep = " ";
        }
    }
}

/* The same, of the options that take a value, separated by @p sep. */
static void put_value_options(FILE *f, const struct option *const *tables, const char *sep)
{
    const char *s = "";
    for (const struct option *const *t = tables; t && *t; t++) {
        for (const struct option *o = *t; o->name; o++) {
            if (o->has_arg == required_argument && !named_before(tables, o)) {
                fprintf(f, "%s--%s", s, o->name);
                if (short_of(o))
                    fprintf(f, "%s-%c", sep, short_of(o));
                s = sep;
            }
        }
    }
}

static void put_subcommands(FILE *f, const char *const *subs)
{
    for (const char *sep = ""; subs && *subs; subs++, sep = " ")
        fprintf(f, "%s%s", sep, *subs);
}

static void put_commands(FILE *f)
{
    for (const struct cli_command *cmd = cli_commands; cmd->name; cmd++)
        fprintf(f, "%s%s", cmd == cli_commands ? "" : " ", cmd->name);
}

static const struct option *const globals[] = { cli_global_options, NULL };

/* The set of values of @p cmd's option @p opt, or NULL. */
static const struct option_values *values_of(const char *cmd, const char *opt)
{
    for (const struct option_values *v = option_values; v->cmd; v++)
        if (strcmp(v->cmd, cmd) == 0 && strcmp(v->opt, opt) == 0)
            return v;
    return NULL;
}

/* A case pattern per option of option_values ("audit:--by|audit:-b"), then
 * @p pre, its values (@p zones for a time zone), @p post. */
static void put_value_cases(FILE *f, const char *indent, const char *pre, const char *post,
                            const char *zones)
{
    for (const struct option_values *v = option_values; v->cmd; v++) {
        const struct cli_command *cmd = cli_commands;
        while (cmd->name && strcmp(cmd->name, v->cmd) != 0)
            cmd++;
        const struct option *o = cmd->name ? find_option(cmd, v->opt) : NULL;
        if (!o)
            continue;
        fprintf(f, "%s%s:--%s", indent, v->cmd, v->opt);
        if (short_of(o))
            fprintf(f, "|%s:-%c", v->cmd, short_of(o));
        fprintf(f, "%s%s%s", pre, v->values ? v->values : zones, post);
    }
}

static void bash(FILE *f)
{
    fputs("# bash completion for penlink; generated by `penlink completion bash`.\n"
          "_penlink_zones()\n"
          "{\n"
          "    echo UTC\n"
          "    find /usr/share/zoneinfo -type f -name '[A-Z]*' 2> /dev/null |\n"
          "        sed 's|^/usr/share/zoneinfo/||; /^posix\\//d; /^right\\//d'\n"
          "}\n"
          "_penlink()\n"
          "{\n"
          "    local cur=${COMP_WORDS[COMP_CWORD]} prev=\n"
          "    (( COMP_CWORD > 0 )) && prev=${COMP_WORDS[COMP_CWORD-1]}\n"
          "    local commands='",
          f);
    put_commands(f);
    fputs("'\n    local globals='", f);
    put_options(f, globals, 0);
    fputs("'\n"
          "    local cmd= sub= i w\n"
          "    for (( i = 1; i < COMP_CWORD; i++ )); do\n"
          "        w=${COMP_WORDS[i]}\n"
          "        case $w in\n"
          "            ",
          f);
    put_value_options(f, globals, "|");
    fputs(") (( i++ )) ;;\n"
          "            -*) ;;\n"
          "            *) if [[ -z $cmd ]]; then cmd=$w; elif [[ -z $sub ]]; then sub=$w; fi ;;\n"
          "        esac\n"
          "    done\n"
          "    local subs= opts= values=\n"
          "    case $cmd in\n",
          f);
    for (const struct cli_command *cmd = cli_commands; cmd->name; cmd++) {
        fprintf(f, "        %s) subs='", cmd->name);
        put_subcommands(f, cmd->subcommands);
        fputs("' opts='", f);
        put_options(f, cmd->options, 1);
        fputs("' values='", f);
        put_value_options(f, cmd->options, " ");
        fputs("' ;;\n", f);
    }
    fputs("    esac\n"
          "    case $cmd:$prev in\n",
          f);
    put_value_cases(f, "        ", ") COMPREPLY=( $(compgen -W \"",
                    "\" -- \"$cur\") ); return ;;\n", "$(_penlink_zones)");
    fputs("    esac\n"
          "    case \" $values \" in\n"
          "        *\" $prev \"*) COMPREPLY=( $(compgen -f -- \"$cur\") ); return ;;\n"
          "    esac\n"
          "    case $prev in\n"
          "        ",
          f);
    put_value_options(f, globals, "|");
    fputs(") COMPREPLY=( $(compgen -f -- \"$cur\") ); return ;;\n"
          "    esac\n"
          "    if [[ -z $cmd ]]; then\n"
          "        if [[ $cur == -* ]]; then\n"
          "            COMPREPLY=( $(compgen -W \"$globals\" -- \"$cur\") )\n"
          "        else\n"
          "            COMPREPLY=( $(compgen -W \"$commands\" -- \"$cur\") )\n"
          "        fi\n"
          "    elif [[ $cur == -* ]]; then\n"
          "        COMPREPLY=( $(compgen -W \"$opts $globals\" -- \"$cur\") )\n"
          "    elif [[ -z $sub && -n $subs ]]; then\n"
          "        COMPREPLY=( $(compgen -W \"$subs\" -- \"$cur\") )\n"
          "    else\n"
          "        COMPREPLY=( $(compgen -f -- \"$cur\") )\n"
          "    fi\n"
          "}\n"
          "complete -o filenames -F _penlink penlink\n",
          f);
}

static void zsh(FILE *f)
{
    fputs("#compdef penlink\n"
          "# zsh completion for penlink; generated by `penlink completion zsh`.\n"
          "_penlink_zones() {\n"
          "    print UTC\n"
          "    find /usr/share/zoneinfo -type f -name '[A-Z]*' 2> /dev/null |\n"
          "        sed 's|^/usr/share/zoneinfo/||; /^posix\\//d; /^right\\//d'\n"
          "}\n"
          "_penlink() {\n"
          "    local -a commands globals subs opts values\n"
          "    commands=(",
          f);
    put_commands(f);
    fputs(")\n    globals=(", f);
    put_options(f, globals, 0);
    fputs(")\n"
          "    local cmd= sub= i\n"
          "    for (( i = 2; i < CURRENT; i++ )); do\n"
          "        case ${words[i]} in\n"
          "            ",
          f);
    put_value_options(f, globals, "|");
    fputs(") (( i++ )) ;;\n"
          "            -*) ;;\n"
          "            *) if [[ -z $cmd ]]; then cmd=${words[i]}; elif [[ -z $sub ]]; then "
          "sub=${words[i]}; fi ;;\n"
          "        esac\n"
          "    done\n"
          "    case $cmd in\n",
          f);
    for (const struct cli_command *cmd = cli_commands; cmd->name; cmd++) {
        fprintf(f, "        %s) subs=(", cmd->name);
        put_subcommands(f, cmd->subcommands);
        fputs(") opts=(", f);
        put_options(f, cmd->options, 1);
        fputs(") values=(", f);
        put_value_options(f, cmd->options, " ");
        fputs(") ;;\n", f);
    }
    fputs("    esac\n"
          "    local prev=${words[CURRENT-1]}\n"
          "    case $cmd:$prev in\n",
          f);
    put_value_cases(f, "        ", ") compadd ", "; return ;;\n", "$(_penlink_zones)");
    fputs("    esac\n"
          "    if (( ${values[(Ie)$prev]} )) || [[ $prev == (",
          f);
    put_value_options(f, globals, "|");
    fputs(") ]]; then\n"
          "        _files\n"
          "    elif [[ -z $cmd ]]; then\n"
          "        if [[ $PREFIX == -* ]]; then compadd -a globals; else compadd -a commands; fi\n"
          "    elif [[ $PREFIX == -* ]]; then\n"
          "        compadd -a opts globals\n"
          "    elif [[ -z $sub && ${#subs} -gt 0 ]]; then\n"
          "        compadd -a subs\n"
          "    else\n"
          "        _files\n"
          "    fi\n"
          "}\n"
          "_penlink \"$@\"\n",
          f);
}

/* fish: one `complete` line per option (with its short form); an option that
 * takes a value gets its set of values (option_values), else file names. */
static void fish_options(FILE *f, const char *cond, const char *cmd,
                         const struct option *const *tables)
{
    for (const struct option *const *t = tables; t && *t; t++) {
        for (const struct option *o = *t; o->name; o++) {
            if (named_before(tables, o))
                continue;
            fprintf(f, "complete -c penlink%s -l %s", cond, o->name);
            if (short_of(o))
                fprintf(f, " -s %c", short_of(o));
            const struct option_values *v = cmd ? values_of(cmd, o->name) : NULL;
            if (v)
                fprintf(f, " -x -a '%s'", v->values ? v->values : "(__penlink_zones)");
            else if (o->has_arg == required_argument)
                fputs(" -r -F", f);
            fputc('\n', f);
        }
    }
}

static void fish(FILE *f)
{
    fputs("# fish completion for penlink; generated by `penlink completion fish`.\n"
          "function __penlink_zones\n"
          "    echo UTC\n"
          "    find /usr/share/zoneinfo -type f -name '[A-Z]*' 2> /dev/null |\n"
          "        string replace /usr/share/zoneinfo/ '' | string match -rv '^(posix|right)/'\n"
          "end\n"
          "complete -c penlink -f\n",
          f);
    fish_options(f, "", NULL, globals);
    fprintf(f, "complete -c penlink -n __fish_use_subcommand -a '");
    put_commands(f);
    fputs("'\n", f);
    for (const struct cli_command *cmd = cli_commands; cmd->name; cmd++) {
        char cond[128];
        snprintf(cond, sizeof cond, " -n '__fish_seen_subcommand_from %s'", cmd->name);
        if (cmd->subcommands) {
            fprintf(f, "complete -c penlink%s -a '", cond);
            put_subcommands(f, cmd->subcommands);
            fputs("'\n", f);
        } else {
            fprintf(f, "complete -c penlink%s -F\n", cond);
        }
        fish_options(f, cond, cmd->name, cmd->options);
    }
}

static void words(FILE *f)
{
    for (const struct option *o = cli_global_options; o->name; o++) {
        fprintf(f, "--%s\n", o->name);
        if (short_of(o))
            fprintf(f, "-%c\n", short_of(o));
    }
    for (const struct cli_command *cmd = cli_commands; cmd->name; cmd++) {
        fprintf(f, "%s\n", cmd->name);
        for (const char *const *sub = cmd->subcommands; sub && *sub; sub++)
            fprintf(f, "%s %s\n", cmd->name, *sub);
        for (const struct option *const *t = cmd->options; t && *t; t++) {
            for (const struct option *o = *t; o->name; o++) {
                if (named_before(cmd->options, o))
                    continue;
                fprintf(f, "%s --%s\n", cmd->name, o->name);
                if (short_of(o))
                    fprintf(f, "%s -%c\n", cmd->name, short_of(o));
            }
        }
    }
}

int cmd_completion(struct cli *c, int argc, char **argv)
{
    int done = cli_help_only(argc, argv, usage, 1);
    if (done >= 0)
        return done;
    const char *shell = argv[optind];
    if (strcmp(shell, "bash") == 0)
        bash(stdout);
    else if (strcmp(shell, "zsh") == 0)
        zsh(stdout);
    else if (strcmp(shell, "fish") == 0)
        fish(stdout);
    else if (strcmp(shell, "words") == 0)
        words(stdout);
    else
        return cli_error(c, EXIT_USAGE, "completion: no script for '%s' (bash, zsh or fish)",
                         shell);
    if (fflush(stdout) != 0 || ferror(stdout))
        return EXIT_IO; /* main's check of standard output says why, once */
    return EXIT_OK;
}
