# tests/python: the Python package (python/) through pytest, one TAP line per
# test: against the real agent on a Unix socket, through the backend and
# guestsim, the exec: transport through OpenSSH on loopback, and the Ansible
# connection plugin (contrib/ansible) with ansible-core.
python_tests = \
	tests/python/test-py-client.py \
	tests/python/test-py-aio.py \
	tests/python/test-py-hostile.py \
	tests/python/test-py-bridge.py \
	tests/python/test-py-exec-transport.py \
	tests/python/test-py-ansible.py
TESTS += $(python_tests)
dist_check_SCRIPTS += $(python_tests)
EXTRA_DIST += tests/python/pytap.py \
	python/pyproject.toml python/README.md python/guestlink/py.typed \
	python/guestlink/__init__.py python/guestlink/_common.py python/guestlink/_transport.py \
	python/guestlink/aio.py python/guestlink/client.py python/guestlink/errors.py \
	python/tests/conftest.py python/tests/test_client.py python/tests/test_aio.py \
	python/tests/test_bridge.py python/tests/test_exec_transport.py python/tests/test_ansible.py \
	python/tests/test_hostile.py \
	contrib/ansible/galaxy.yml contrib/ansible/README.md contrib/ansible/meta/runtime.yml \
	contrib/ansible/plugins/connection/guestlink.py
