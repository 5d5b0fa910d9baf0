#!/bin/sh
# repofeed-hook version @VERSION@
# Installed by `repofeed install`; `repofeed uninstall` removes it and puts back the hook that
# was here before, which is kept meanwhile as repofeed-chained/@HOOK@ and run after this one.
#
# It only appends a line to repofeed's spool, which wakes the daemon; the daemon then reads the
# refs themselves, so a lost line loses nothing. It starts no Python and never fails git: a
# missing spool directory, a full or read-only disk, a dead daemon or an uninstalled repofeed
# only mean no nudge. Each write is a plain `printf` with its redirections: a failed
# redirection ends only that command, in every POSIX shell.
hook='@HOOK@'
case $0 in
    */*) here=${0%/*} ;;
    *) here=. ;;
esac
@SPOOL@
input=
if [ "$hook" = post-rewrite ]; then
    input=$(cat)  # "old new" commit ids, one pair a line; git waits for it to be read
fi
if [ -n "$spool" ]; then
    printf '%s %s\n' "$hook" "$*" 2>/dev/null >>"$spool"
    [ -z "$input" ] || printf '%s\n' "$input" 2>/dev/null >>"$spool"
fi
chained="$here/repofeed-chained/$hook"
if [ -x "$chained" ] && [ "${REPOFEED_HOOK_CHAINED:-}" != "$here/$hook" ]; then
    # The previous hook runs once, with the same arguments and input, under its own name,
    # and its exit status is git's (post-checkout's status becomes the checkout's). The
    # variable, scoped to this hook, stops a loop when that hook runs git in this repository.
    REPOFEED_HOOK_CHAINED="$here/$hook"
    export REPOFEED_HOOK_CHAINED
    if [ "$hook" = post-rewrite ]; then
        { [ -z "$input" ] || printf '%s\n' "$input"; } | "$chained" "$@"
        exit $?
    fi
    exec "$chained" "$@"
fi
exit 0
