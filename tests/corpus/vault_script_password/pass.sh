#!/bin/sh
echo script-pass
