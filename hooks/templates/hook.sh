#!/bin/sh
# repofeed-hook version @VERSION@
# Installed by `repofeed install`; `repofeed uninstall` removes it and puts back any hook that
# was here before (kept meanwhile as @HOOK@.legacy and run after this one).
#
# It only appends a line to repofeed's spool, which wakes the daemon; the daemon then reads the
# refs themselves, so a lost line loses nothing. It starts no Python and never fails git: a
# missing spool directory, a full or read-only disk, a dead daemon or an uninstalled repofeed
# only mean no nudge.
spool='@SPOOL@'
hook='@HOOK@'
legacy="$0.legacy"
input=
if [ "$hook" = post-rewrite ]; then
    input=$(cat)  # "old new" commit ids, one pair a line; git waits for it to be read
fi
{
    printf '%s %s\n' "$hook" "$*"
    [ -z "$input" ] || printf '%s\n' "$input"
} 2>/dev/null >>"$spool"
if [ -x "$legacy" ] && [ -z "${REPOFEED_HOOK_CHAINED:-}" ]; then
    # The previous hook runs once, with the same arguments and input, and its exit status is
    # git's (post-checkout's status becomes the checkout's). The variable stops a loop when
    # that hook runs git itself.
    REPOFEED_HOOK_CHAINED=1
    export REPOFEED_HOOK_CHAINED
    if [ "$hook" = post-rewrite ]; then
        { [ -z "$input" ] || printf '%s\n' "$input"; } | "$legacy" "$@"
        exit $?
    fi
    exec "$legacy" "$@"
fi
exit 0
