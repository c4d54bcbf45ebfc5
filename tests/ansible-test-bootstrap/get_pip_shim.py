"""Offline stand-in for ansible-test's cached get-pip script.

Copied by seed.sh to ~/.ansible/test/cache/get_pip_<ver>.py.  ansible-test runs it
(through quiet_pip.py, GET_PIP=<this file>) inside a fresh pip-less venv as

    python quiet_pip.py [common pip options] pip==<ver> --no-setuptools --no-wheel

Like the real get-pip.py it installs pip (and, unless told not to, setuptools and
wheel) with a pip imported from a wheel, but the wheel is the one lying next to
this file, so nothing is fetched from ci-files.testing.ansible.com.
"""

import glob
import os
import sys


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    args = sys.argv[1:]
    extra = []
    if '--no-setuptools' in args:
        args.remove('--no-setuptools')
    else:
        extra.append('setuptools')
    if '--no-wheel' in args:
        args.remove('--no-wheel')
    else:
        extra.append('wheel')

    wheels = sorted(glob.glob(os.path.join(here, 'pip-*-py3-none-any.whl')))
    if not wheels:
        sys.exit('get_pip shim: no pip wheel in %s (run tests/ansible-test-bootstrap/seed.sh)' % here)

    # pip runs from its own wheel (the same trick the real get-pip.py uses)
    sys.path.insert(0, wheels[-1])
    from pip._internal.cli.main import main as pip_main  # pylint: disable=import-outside-toplevel

    # --no-index --find-links: the wheel beside us satisfies "pip==<ver>" without the network
    return pip_main(['install', '--upgrade', '--force-reinstall', '--no-index', '--find-links', here] + args + extra)


if __name__ == '__main__':
    sys.exit(main())
