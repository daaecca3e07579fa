# -*- coding: utf-8 -*-
import os
from cms.envs.production import *

CMS_BASE = "studio.example.org"
ALLOWED_HOSTS = [CMS_BASE, "cms"]
