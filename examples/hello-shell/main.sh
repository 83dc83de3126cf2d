#!/bin/sh
# A shell task: the payload is a file; the exit code is the task's.
set -eu
echo "payload: $(cat "$MAYFLY_PAYLOAD_FILE")"
echo "task $MAYFLY_TASK_ID attempt $MAYFLY_ATTEMPT as $(id -u) in $(pwd)"
ls -la
printf '{"files": %s}\n' "$(ls | wc -l)" > /mayfly/result.json
