#!/bin/sh
# Start the test OpenID provider (see op.mjs for its environment).
cd "$(dirname "$0")" && exec node op.mjs
