"""The inspection program's pages and API routes, one router for the app to include: search and saved
searches (`web_search`), review plans and the inspector's queue (`web_plans`), calibration sessions
(`web_calibration`), trends and the weekly summary (`web_trends`), coaching (`web_coaching`), deleting calls and exporting an agent's data (`web_lifecycle`)."""

from __future__ import annotations

from fastapi import APIRouter

from . import web_calibration, web_coaching, web_lifecycle, web_plans, web_search, web_trends

router = APIRouter()
router.include_router(web_search.router)
router.include_router(web_plans.router)
router.include_router(web_calibration.router)
router.include_router(web_trends.router)
router.include_router(web_coaching.router)
router.include_router(web_lifecycle.router)
