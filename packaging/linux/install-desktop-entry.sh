#!/bin/sh
# Put RLM Desktop in the current user's application menu (no root): the menu entry, icons
# and a `rlm-desktop` command in ~/.local/bin, all pointing at this unpacked folder.
# `./install-desktop-entry.sh --uninstall` takes them away again.
set -eu
HERE="$(cd "$(dirname "$0")" && pwd)"
APP_ID=io.github.rlm_desktop.RLMDesktop
DATA="${XDG_DATA_HOME:-$HOME/.local/share}"
BIN="$HOME/.local/bin"

if [ "${1:-}" = "--uninstall" ]; then
    rm -f "$DATA/applications/$APP_ID.desktop" "$DATA/metainfo/$APP_ID.metainfo.xml"
    find "$DATA/icons/hicolor" -name "$APP_ID.*" -delete 2>/dev/null || true
    if [ -L "$BIN/rlm-desktop" ]; then rm -f "$BIN/rlm-desktop"; fi
    echo "RLM Desktop removed from the menu (this folder is left as it is)."
    exit 0
fi

mkdir -p "$DATA/applications" "$DATA/metainfo" "$BIN"
cp -R "$HERE/share/icons" "$DATA/"
cp "$HERE/share/metainfo/$APP_ID.metainfo.xml" "$DATA/metainfo/"
# The entry runs this folder's executable by its full path.
sed -e "s|^Exec=rlm-desktop|Exec=\"$HERE/rlm-desktop\"|" \
    -e "s|^TryExec=rlm-desktop|TryExec=$HERE/rlm-desktop|" \
    "$HERE/share/applications/$APP_ID.desktop" > "$DATA/applications/$APP_ID.desktop"
ln -sf "$HERE/rlm-desktop" "$BIN/rlm-desktop"
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$DATA/applications" || true
command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t "$DATA/icons/hicolor" || true
echo "RLM Desktop is in the application menu; 'rlm-desktop' is in $BIN."
