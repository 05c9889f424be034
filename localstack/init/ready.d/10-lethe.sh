#!/bin/bash
# LocalStack init hook: the DynamoDB table and S3 bucket Lethe's AWS profile needs, as
# `lethe provision` creates them (src/storage/dynamodb/mod.rs INDEXES; a test keeps this
# script in step with it). Idempotent: re-running is harmless, and so is running
# `lethe provision` afterwards.
set -euo pipefail
TABLE="${LETHE_DYNAMODB_TABLE:-lethe}"
BUCKET="${LETHE_S3_BUCKET:-lethe-content}"

index() { # name hash range
  printf '{"IndexName":"%s","KeySchema":[{"AttributeName":"%s","KeyType":"HASH"},{"AttributeName":"%s","KeyType":"RANGE"}],"Projection":{"ProjectionType":"ALL"}}' "$1" "$2" "$3"
}

if ! awslocal dynamodb describe-table --table-name "$TABLE" >/dev/null 2>&1; then
  attributes=""
  for name in pk sk g1pk g1sk g2pk g2sk g3pk g3sk g4pk g4sk dpk dsk apk ask tpk tsk; do
    attributes="$attributes AttributeName=$name,AttributeType=S"
  done
  awslocal dynamodb create-table \
    --table-name "$TABLE" \
    --billing-mode PAY_PER_REQUEST \
    --attribute-definitions $attributes \
    --key-schema AttributeName=pk,KeyType=HASH AttributeName=sk,KeyType=RANGE \
    --global-secondary-indexes \
      "[$(index g1 g1pk g1sk),$(index g2 g2pk g2sk),$(index g3 g3pk g3sk),$(index g4 g4pk g4sk),$(index due dpk dsk),$(index acct apk ask),$(index train tpk tsk)]"
  awslocal dynamodb wait table-exists --table-name "$TABLE"
  # A new table has no due entries: its due-day directory starts complete and empty.
  awslocal dynamodb put-item --table-name "$TABLE" \
    --item '{"pk":{"S":"META"},"sk":{"S":"DUE_DAYS"},"complete":{"BOOL":true}}' \
    --condition-expression "attribute_not_exists(pk)" >/dev/null 2>&1 || true
fi
awslocal dynamodb update-time-to-live --table-name "$TABLE" \
  --time-to-live-specification "Enabled=true,AttributeName=expires_at" >/dev/null 2>&1 || true

awslocal s3api head-bucket --bucket "$BUCKET" >/dev/null 2>&1 || awslocal s3 mb "s3://$BUCKET"
echo "lethe: table $TABLE and bucket $BUCKET ready"
