#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Shell completion against the real agent: bash (the plain path, without the
bash-completion package) completes each command's options from its --help,
guest: paths through file.list, METHOD through rpc.discover; zsh loads
_guestlink through compinit and completes options and guest: paths in a real
interactive zsh on a pseudo-terminal (zsh/zpty)."""

import os
import shutil
import subprocess

from gltest import Proc, build_path, diag, done, is_eq, ok, skip_all, src_path, tmpdir, wait_for_listener

AGENT = build_path("agent", "guestlink-agent")
GUESTLINK = build_path("host", "guestlink")
BASH_COMPLETION = src_path("host", "bash-completion", "guestlink")
ZSH_DIR = src_path("host", "zsh-completion")
if not os.access(AGENT, os.X_OK):
    skip_all("guestlink-agent not built")

TMP = tmpdir()
SOCK = os.path.join(TMP, "agent.sock")
agent = Proc([AGENT, "--listen", "unix:" + SOCK], stderr=subprocess.DEVNULL)
if not ok(wait_for_listener(SOCK, 10, agent), "agent listens on its Unix socket"):
    done()
tree = os.path.join(TMP, "g")
os.makedirs(os.path.join(tree, "subdir"))
for n in ("file-one", "file-two", "other"):
    open(os.path.join(tree, n), "w").close()
open(os.path.join(tree, "bad\x1b[2Jname"), "w").close()
A = ["-a", "unix:" + SOCK]


def bash_complete(*words):
    script = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); '
              '_guestlink 2>/dev/null; printf "%s\\n" "${COMPREPLY[@]}"')
    p = subprocess.run(["bash", "-c", script, "bash", BASH_COMPLETION, GUESTLINK] + list(words),
                       capture_output=True, text=True, timeout=30)
    return sorted(x for x in p.stdout.splitlines() if x)


is_eq(bash_complete("cp", "--v"), ["--verify"], "bash: cp's options from cp --help")
is_eq(bash_complete("exec", "--c"), ["--cwd"], "bash: exec's options")
is_eq(bash_complete("ping", "--"), ["--help", "--wait"], "bash: ping's options")
is_eq(bash_complete(*A, "cp", "guest:" + tree + "/"),
      ["guest:%s/%s" % (tree, n) for n in ("file-one", "file-two", "other", "subdir/")],
      "bash: guest: paths through file.list, directories with a slash, no hostile names")
is_eq(bash_complete(*A, "cp", "guest:" + tree + "/file-"),
      ["guest:%s/file-one" % tree, "guest:%s/file-two" % tree], "bash: guest: path prefix")
is_eq(bash_complete(*A, "cp", "./x", "guest:" + tree + "/su"), ["guest:%s/subdir/" % tree],
      "bash: guest: as the destination")
ok("file.sha256" in bash_complete(*A, "methods", "file.s"), "bash: methods METHOD from the agent")
is_eq(bash_complete("help", "pi"), ["ping"], "bash: help COMMAND")
is_eq(bash_complete("cp", "guest:/x"), [], "bash: no address, no guest paths (and no error)")

# --- zsh ---------------------------------------------------------------------------------
if not shutil.which("zsh"):
    ok(True, "# SKIP zsh not installed")
    agent.stop()
    done()
p = subprocess.run(["zsh", "-n", os.path.join(ZSH_DIR, "_guestlink")], capture_output=True,
                   text=True, timeout=30)
is_eq((p.returncode, p.stderr), (0, ""), "zsh: _guestlink parses")
p = subprocess.run(["zsh", "-f", "-c", 'fpath=("$1" $fpath); autoload -Uz compinit; '
                    'compinit -u -D; print -r -- $_comps[guestlink]', "zsh", ZSH_DIR],
                   capture_output=True, text=True, timeout=30)
is_eq(p.stdout, "_guestlink\n", "zsh: compinit registers _guestlink for guestlink")

ZPTY = r'''
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "PS1='%% '; fpath=($1 \$fpath); autoload -Uz compinit; compinit -u -D; PATH=$2:\$PATH"
sleep 1
zpty -w -n z "guestlink $3"$'\t'
local out= chunk i
# Until the expected completion shows (at most 15 s): the agent is asked.
for ((i = 0; i < 150; i++)); do
	while zpty -r -t z chunk; do out+=$chunk; done
	[[ ${out//$'\a'/} == *"$4"* ]] && break
	sleep 0.1
done
print -r -- "$out"
zpty -d z
'''


def zsh_complete(line, expect):
    p = subprocess.run(["zsh", "-f", "-c", ZPTY, "zsh", ZSH_DIR, os.path.dirname(GUESTLINK), line,
                        expect],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, TERM="dumb"))
    return p.stdout


out = zsh_complete("cp --ver", "--verify")
ok("guestlink cp --verify" in out, "zsh: cp --ver<TAB> -> --verify")
out = zsh_complete("-a unix:%s cp guest:%s/su" % (SOCK, tree), "bdir/").replace("\x07", "")
ok("guest:%s/subdir/" % tree in out, "zsh: guest: paths through file.list")
if "subdir/" not in out:
    diag(repr(out[-300:]))
ok("\x1b[2J" not in out, "zsh: a hostile guest name is not offered")
is_eq(agent.stop(), 0, "agent exits 0 on SIGTERM")
done()
