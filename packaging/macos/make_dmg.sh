#!/usr/bin/env bash
# The macOS disk image of RLM Desktop: sign the .app (when asked), put it with a link to
# /Applications in a compressed .dmg, sign and notarize that (when asked), staple.
#
#   packaging/macos/make_dmg.sh "dist/RLM Desktop.app" VERSION dist
#
# Called by packaging/build.py on macOS. Environment:
#   MACOS_SIGN_IDENTITY      "Developer ID Application: Name (TEAMID)" in the keychain;
#                            unset: the .app keeps PyInstaller's ad-hoc signature (runs on
#                            this Mac; elsewhere Gatekeeper asks, see packaging/README.md)
#   MACOS_NOTARY_PROFILE     a notarytool keychain profile (xcrun notarytool
#                            store-credentials NAME ...), or all three of:
#   MACOS_NOTARY_APPLE_ID, MACOS_NOTARY_TEAM_ID, MACOS_NOTARY_PASSWORD (app-specific)
#                            Notarization needs MACOS_SIGN_IDENTITY.
set -euo pipefail

APP=${1:?usage: make_dmg.sh APP VERSION OUTDIR}
VERSION=${2:?version}
OUT=${3:?output folder}
HERE="$(cd "$(dirname "$0")" && pwd)"
ARCH="$(uname -m)"
DMG="$OUT/RLM-Desktop-$VERSION-macos-$ARCH.dmg"
IDENTITY="${MACOS_SIGN_IDENTITY:-}"

sign() {  # sign one file or bundle with the hardened runtime and a secure timestamp
    codesign --force --timestamp --options runtime --sign "$IDENTITY" "$@"
}

if [ -n "$IDENTITY" ]; then
    echo "==> signing $APP as $IDENTITY"
    # Inside out: every Mach-O library and extension module, then the Qt frameworks, then
    # the app (its main executable with the entitlements). --deep is not used: it signs
    # in an order Apple does not guarantee and cannot give per-file entitlements.
    while IFS= read -r -d '' file; do
        if file -b "$file" | grep -q "Mach-O"; then sign "$file"; fi
    done < <(find "$APP/Contents/Frameworks" "$APP/Contents/Resources" -type f \
               \( -name "*.so" -o -name "*.dylib" -o -perm -u+x \) -print0)
    while IFS= read -r -d '' framework; do
        sign "$framework"
    done < <(find "$APP/Contents/Frameworks" -type d -name "*.framework" -print0)
    sign --entitlements "$HERE/entitlements.plist" "$APP"
    codesign --verify --strict --verbose=2 "$APP"
else
    echo "==> MACOS_SIGN_IDENTITY not set: $APP keeps its ad-hoc signature"
fi

echo "==> $DMG"
STAGING="$(mktemp -d)"
trap 'rm -rf "$STAGING"' EXIT
cp -R "$APP" "$STAGING/"
ln -s /Applications "$STAGING/Applications"
rm -f "$DMG"
hdiutil create -volname "RLM Desktop $VERSION" -srcfolder "$STAGING" -fs HFS+ \
    -format UDZO -imagekey zlib-level=9 -ov "$DMG"

if [ -n "$IDENTITY" ]; then
    codesign --force --timestamp --sign "$IDENTITY" "$DMG"
fi

notary=()
if [ -n "${MACOS_NOTARY_PROFILE:-}" ]; then
    notary=(--keychain-profile "$MACOS_NOTARY_PROFILE")
elif [ -n "${MACOS_NOTARY_APPLE_ID:-}" ]; then
    notary=(--apple-id "$MACOS_NOTARY_APPLE_ID" --team-id "${MACOS_NOTARY_TEAM_ID:?}"
            --password "${MACOS_NOTARY_PASSWORD:?}")
fi
if [ ${#notary[@]} -gt 0 ]; then
    if [ -z "$IDENTITY" ]; then
        echo "notarization needs MACOS_SIGN_IDENTITY" >&2
        exit 2
    fi
    echo "==> notarizing (this waits for Apple's answer, usually a few minutes)"
    xcrun notarytool submit "$DMG" "${notary[@]}" --wait
    xcrun stapler staple "$DMG"
    spctl --assess --type open --context context:primary-signature --verbose=2 "$DMG"
else
    echo "==> no notarization credentials: the .dmg is not notarized"
fi
echo "$DMG"
