; Inno Setup 6 script of the RLM Desktop installer for Windows (x64).
; Built by packaging/build.py on Windows after PyInstaller, or by hand:
;   iscc /DAppVersion=0.1.0 /DSourceDir=dist\rlm-desktop /DOutputDir=dist packaging\windows\rlm-desktop.iss
; Result: dist\rlm-desktop-VERSION-windows-setup.exe. Per-user install by default (no admin
; prompt); "Install for all users" in the wizard asks for elevation and uses Program Files.
; Signing: define SignTool in Inno Setup (Tools > Configure Sign Tools), e.g. named
; "signtool" = signtool.exe sign /fd sha256 /tr http://timestamp.digicert.com /td sha256
;   /f $qC:\certs\rlm.pfx$q /p $qPASSWORD$q $f
; and build with /DSign=signtool: the installer and its uninstaller are signed.

#ifndef AppVersion
  #define AppVersion "0.0.0"
#endif
#ifndef SourceDir
  #define SourceDir "..\..\dist\rlm-desktop"
#endif
#ifndef OutputDir
  #define OutputDir "..\..\dist"
#endif
#define AppName "RLM Desktop"
#define AppExe "rlm-desktop.exe"
#define AppCliExe "rlm-desktop-cli.exe"
#define AppId "io.github.rlm_desktop.RLMDesktop"

[Setup]
; A fixed AppId: upgrades replace the installed version instead of adding a second one.
AppId={{6F1B8E2A-4C3D-4E7B-9A51-2D8C0F3B7A64}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher=RLM Desktop team
AppPublisherURL=https://github.com/rlm-desktop/rlm-desktop
AppSupportURL=https://github.com/rlm-desktop/rlm-desktop/issues
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0
LicenseFile=..\..\LICENSE
SetupIconFile=..\..\rlm_desktop\resources\icons\rlm-desktop.ico
UninstallDisplayIcon={app}\{#AppExe}
UninstallDisplayName={#AppName}
OutputDir={#OutputDir}
OutputBaseFilename=rlm-desktop-{#AppVersion}-windows-setup
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
ChangesEnvironment=yes
CloseApplications=yes
#ifdef Sign
SignTool={#Sign}
SignedUninstaller=yes
#endif

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked
Name: "addtopath"; Description: "Add the rlm-desktop-cli command to PATH (ingest and ask from a terminal)"; GroupDescription: "Command line:"; Flags: unchecked

[Files]
; The whole one-directory app: both executables and _internal\ (Qt, Python, resources).
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\{#AppExe}"; WorkingDir: "{userdocs}"; AppUserModelID: "{#AppId}"
Name: "{group}\Uninstall {#AppName}"; Filename: "{uninstallexe}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; WorkingDir: "{userdocs}"; Tasks: desktopicon

[Registry]
; "Open with" for the document types the app reads (it never takes over the default).
Root: HKA; Subkey: "Software\Classes\Applications\{#AppExe}"; ValueType: string; ValueName: "FriendlyAppName"; ValueData: "{#AppName}"; Flags: uninsdeletekey
Root: HKA; Subkey: "Software\Classes\Applications\{#AppExe}\shell\open\command"; ValueType: string; ValueData: """{app}\{#AppExe}"" ""%1"""
Root: HKA; Subkey: "Software\Classes\.pdf\OpenWithList\{#AppExe}"; Flags: uninsdeletekey
Root: HKA; Subkey: "Software\Classes\.docx\OpenWithList\{#AppExe}"; Flags: uninsdeletekey
Root: HKA; Subkey: "Software\Classes\.eml\OpenWithList\{#AppExe}"; Flags: uninsdeletekey
Root: HKA; Subkey: "Software\Classes\.msg\OpenWithList\{#AppExe}"; Flags: uninsdeletekey
Root: HKA; Subkey: "Software\Classes\.mbox\OpenWithList\{#AppExe}"; Flags: uninsdeletekey
; PATH for the console executable (per user, or machine-wide for an all-users install).
Root: HKCU; Subkey: "Environment"; ValueType: expandsz; ValueName: "Path"; ValueData: "{olddata};{app}"; Tasks: addtopath; Check: IsPerUser and NeedsAddPath('{app}')
Root: HKLM; Subkey: "SYSTEM\CurrentControlSet\Control\Session Manager\Environment"; ValueType: expandsz; ValueName: "Path"; ValueData: "{olddata};{app}"; Tasks: addtopath; Check: IsAdminInstallMode and NeedsAddPath('{app}')

[Run]
Filename: "{app}\{#AppExe}"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
; Only what the app itself wrote beside its files; the user's settings, cache and saved
; investigations (in %LOCALAPPDATA%\rlm-desktop) stay, as users expect of an uninstaller.
Type: filesandordirs; Name: "{app}\_internal\__pycache__"

[Code]
function IsPerUser: Boolean;
begin
  Result := not IsAdminInstallMode;
end;

function PathKeyRoot: Integer;
begin
  if IsAdminInstallMode then Result := HKEY_LOCAL_MACHINE else Result := HKEY_CURRENT_USER;
end;

function PathKeyName: String;
begin
  if IsAdminInstallMode then
    Result := 'SYSTEM\CurrentControlSet\Control\Session Manager\Environment'
  else
    Result := 'Environment';
end;

{ Dir is '{app}' unexpanded: a Check parameter is passed as written. }
function NeedsAddPath(Dir: String): Boolean;
var
  Paths: String;
begin
  Dir := ExpandConstant(Dir);
  if not RegQueryStringValue(PathKeyRoot, PathKeyName, 'Path', Paths) then
  begin
    Result := True;
    exit;
  end;
  Result := Pos(';' + Uppercase(Dir) + ';', ';' + Uppercase(Paths) + ';') = 0;
end;

{ Take the install folder out of PATH again on uninstall. }
procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
var
  Paths, Dir: String;
  P: Integer;
begin
  if CurUninstallStep <> usPostUninstall then exit;
  if not RegQueryStringValue(PathKeyRoot, PathKeyName, 'Path', Paths) then exit;
  Dir := ExpandConstant('{app}');
  P := Pos(';' + Uppercase(Dir), Uppercase(Paths));
  if P > 0 then
  begin
    Delete(Paths, P, Length(Dir) + 1);
    RegWriteExpandStringValue(PathKeyRoot, PathKeyName, 'Path', Paths);
  end;
end;
