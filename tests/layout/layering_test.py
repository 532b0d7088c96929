#!/usr/bin/env python3
"""The folders' include rules (ARCHITECTURE.md "Folders"; DESIGN.md §8): a folder includes only
itself and the folders it may build on, so the layers stay a stack. Prints each include that breaks
a rule (FILE:LINE: FOLDER may not include TARGET) and exits 1 if there is one.

    layering_test.py [SOURCE_DIR]
"""
import pathlib
import re
import sys

# Folder -> the folders it may include besides itself. A folder not listed may include nothing of
# the project. Longest prefix wins (daemon/run/x.cc is in daemon/run).
MAY_INCLUDE = {
    'common': [],
    'common/chain': ['common'],
    'common/predict': ['common'],
    'cli': ['common', 'common/chain', 'common/predict'],
    'daemon/util': ['common'],
    'daemon/http': ['daemon/util', 'common'],
    'daemon/store': ['daemon/util', 'common', 'common/chain', 'common/predict'],
    'daemon/exec': ['daemon/util', 'common', 'common/chain'],
    'daemon/prefetch': ['daemon/exec', 'daemon/store', 'daemon/util', 'common', 'common/chain',
                        'common/predict'],
    'daemon/run': ['daemon/prefetch', 'daemon/exec', 'daemon/store', 'daemon/util', 'common',
                   'common/chain', 'common/predict'],
    'daemon/api': ['daemon/http', 'daemon/run', 'daemon/prefetch', 'daemon/exec', 'daemon/store',
                   'daemon/util', 'common', 'common/chain', 'common/predict'],
}
# daemon/'s top (main.cc and the wiring) may include every daemon/ folder and common/.
MAY_INCLUDE['daemon'] = sorted(set(MAY_INCLUDE['daemon/api']) | {'daemon/api'})

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def folder_of(path, folders):
    """The longest listed folder that holds path (a path relative to the source dir)."""
    parent = str(pathlib.PurePosixPath(path).parent)
    while parent not in folders and '/' in parent:
        parent = parent.rsplit('/', 1)[0]
    return parent if parent in folders else None


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else '.').resolve()
    folders = set(MAY_INCLUDE)
    errors, checked = [], 0
    for top in ('common', 'cli', 'daemon'):
        for path in sorted((root / top).rglob('*')):
            if path.suffix not in ('.cc', '.h'):
                continue
            rel = path.relative_to(root).as_posix()
            own = folder_of(rel, folders)
            for number, line in enumerate(path.read_text().splitlines(), 1):
                match = INCLUDE.match(line)
                if not match:
                    continue
                target = folder_of(match.group(1), folders)
                if target is None or target == own:
                    continue  # a generated header (common/version.h is in common) or its own folder
                checked += 1
                if target not in MAY_INCLUDE[own]:
                    errors.append(f'{rel}:{number}: {own} may not include {match.group(1)}')
    for error in errors:
        print(error)
    print(f'{checked} includes across folders checked, {len(errors)} against the rules')
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main())
