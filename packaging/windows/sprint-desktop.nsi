; Sprint Desktop: a per-user Windows installer (no administrator rights) for the PyInstaller bundle.
;
;   makensis /DVERSION=0.1.0 /DDIST_DIR=C:/src/dist/sprint-desktop /DOUT_DIR=C:/src/dist packaging/windows/sprint-desktop.nsi
;
; makensis runs in this script's folder: relative paths (and the defaults, ../../dist/...) are
; relative to packaging/windows/, so pass absolute paths.
;
; Installs dist\sprint-desktop\ (sprint-desktop.exe + _internal\) into
; %LOCALAPPDATA%\Programs\Sprint Desktop, adds a Start-menu shortcut (and a desktop shortcut if
; ticked) and registers the uninstaller under HKCU, so it appears in Settings > Apps. The GPU
; runtime is not in here: the app installs it on first use into its own user data folder.
;
; The uninstaller removes the program; it keeps the user's images, settings and downloaded models
; (%LOCALAPPDATA%\SprintDesktop, platformdirs' folder for the app) unless the user ticks that box.
; The downloaded GPU runtime (about 3 GB) is removed by default; that box can be unticked.

Unicode true
SetCompressor /SOLID lzma
ManifestDPIAware true
RequestExecutionLevel user

!ifndef VERSION
  !define VERSION "0.0.0"
!endif
!ifndef DIST_DIR
  !define DIST_DIR "../../dist/sprint-desktop"
!endif
!ifndef OUT_DIR
  !define OUT_DIR "../../dist"
!endif
!define APP_NAME "Sprint Desktop"
!define APP_EXE "sprint-desktop.exe"
!define APP_ID "SprintDesktop"
!define PUBLISHER "Sprint Desktop contributors"
!define UNINSTALL_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\${APP_ID}"
; platformdirs.user_data_dir("SprintDesktop", "SprintDesktop") on Windows (config and cache live
; inside it too): settings.json, gallery\, models\, gpu-runtime\.
!define USER_DATA "$LOCALAPPDATA\SprintDesktop"
!define ICON "../../resources/icons/sprint-desktop.ico"  ; makensis works in the script's folder

!include "MUI2.nsh"
!include "FileFunc.nsh"
!include "LogicLib.nsh"

Name "${APP_NAME}"
OutFile "${OUT_DIR}/sprint-desktop-${VERSION}-windows-x64-setup.exe"
InstallDir "$LOCALAPPDATA\Programs\${APP_NAME}"
InstallDirRegKey HKCU "${UNINSTALL_KEY}" "InstallLocation"
BrandingText "${APP_NAME} ${VERSION}"

VIProductVersion "${VERSION}.0"
VIAddVersionKey "ProductName" "${APP_NAME}"
VIAddVersionKey "ProductVersion" "${VERSION}"
VIAddVersionKey "FileVersion" "${VERSION}"
VIAddVersionKey "FileDescription" "${APP_NAME} installer"
VIAddVersionKey "CompanyName" "${PUBLISHER}"
VIAddVersionKey "LegalCopyright" "Apache-2.0"

!define MUI_ICON "${ICON}"
!define MUI_UNICON "${ICON}"
!define MUI_ABORTWARNING
!define MUI_COMPONENTSPAGE_NODESC
!define MUI_FINISHPAGE_RUN "$INSTDIR\${APP_EXE}"
!define MUI_FINISHPAGE_RUN_TEXT "Start ${APP_NAME}"

!insertmacro MUI_PAGE_WELCOME
!insertmacro MUI_PAGE_COMPONENTS
!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH

!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_COMPONENTS
!insertmacro MUI_UNPAGE_INSTFILES

!insertmacro MUI_LANGUAGE "English"

Function .onInit
  SetShellVarContext current
FunctionEnd

Function un.onInit
  SetShellVarContext current
FunctionEnd

Section "${APP_NAME} (required)" SecApp
  SectionIn RO
  SetOutPath "$INSTDIR"
  ; An update replaces the whole bundle: files left from an older version could shadow new ones.
  RMDir /r "$INSTDIR\_internal"
  File /r "${DIST_DIR}/*"
  WriteUninstaller "$INSTDIR\uninstall.exe"

  CreateShortcut "$SMPROGRAMS\${APP_NAME}.lnk" "$INSTDIR\${APP_EXE}" "" "$INSTDIR\${APP_EXE}" 0

  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayName" "${APP_NAME}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "Publisher" "${PUBLISHER}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayIcon" "$INSTDIR\${APP_EXE}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr HKCU "${UNINSTALL_KEY}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoModify" 1
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoRepair" 1
  ${GetSize} "$INSTDIR" "/S=0K" $0 $1 $2
  IntFmt $0 "0x%08X" $0
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "EstimatedSize" "$0"
SectionEnd

Section /o "Desktop shortcut" SecDesktop
  CreateShortcut "$DESKTOP\${APP_NAME}.lnk" "$INSTDIR\${APP_EXE}" "" "$INSTDIR\${APP_EXE}" 0
SectionEnd

; ---------------------------------------------------------------------------------- uninstaller
Section "un.${APP_NAME}" UnSecApp
  SectionIn RO
  Delete "$SMPROGRAMS\${APP_NAME}.lnk"
  Delete "$DESKTOP\${APP_NAME}.lnk"
  ; Only what the installer put there: never a recursive delete of $INSTDIR itself, which the
  ; user may have pointed at a folder holding other things.
  RMDir /r "$INSTDIR\_internal"
  Delete "$INSTDIR\${APP_EXE}"
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR"
  DeleteRegKey HKCU "${UNINSTALL_KEY}"
SectionEnd

Section "un.The downloaded GPU runtime (about 3 GB)" UnSecGpu
  RMDir /r "${USER_DATA}\SprintDesktop\gpu-runtime"
SectionEnd

Section /o "un.My images, settings and downloaded models" UnSecData
  RMDir /r "${USER_DATA}"
SectionEnd
