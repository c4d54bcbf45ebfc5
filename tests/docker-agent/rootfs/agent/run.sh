#!/bin/sh
# A tiny CIRIS-protocol agent for the docker driver's tests and demo (busybox only):
# httpd serves /cgi-bin/agent (the agent_url is http://HOST:PORT/cgi-bin/agent), and this
# process (the container's PID 1) exits once a shutdown was accepted: the container stops.
# AGENT_VERSION (set by the image), AGENT_HEALTH (healthy unless the image says otherwise),
# AGENT_CONSENT (decline: answers and keeps working), AGENT_ID.
rm -f /tmp/stop
# a container stop (SIGTERM to PID 1) ends the agent at once
trap "exit 0" TERM INT
httpd -p "${AGENT_PORT:-8080}" -h /www
while [ ! -f /tmp/stop ]; do sleep 0.2; done
# drain a moment (health says cognitive_state shutdown), then exit
sleep 0.5
exit 0
