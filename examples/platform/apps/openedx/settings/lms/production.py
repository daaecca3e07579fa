# -*- coding: utf-8 -*-
import os
from lms.envs.production import *

LMS_BASE = "lms.example.org"
ALLOWED_HOSTS = [LMS_BASE, "lms"]
CACHES["default"]["LOCATION"] = "redis://@redis:6379/1"
