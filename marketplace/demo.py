"""Demonstration data: an administrator, two admitted providers, an admitted buyer, an admitted
assessor, a catalog of data products taken through the listing stage (listed, held, rejected), and
one complete trade on the local gateway: ordered through the trade stage, paid into escrow,
delivered, confirmed and settled."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from marketplace.accounts.models import DataGrade, OrganizationKind, OrganizationStatus, User
from marketplace.accounts.principal import Principal
from marketplace.accounts.schemas import IntermediaryQualification, OrganizationCreate, RegisterRequest
from marketplace.accounts.service import AccountService
from marketplace.catalog.samples import CSV, parse_sample, store_content_addressed
from marketplace.catalog.schemas import PlanCreate, ProductCreate
from marketplace.catalog.service import CatalogService
from marketplace.compliance.rulebook import Rulebook
from marketplace.config import Settings
from marketplace.db import create_sessionmaker
from marketplace.delivery.links import DownloadKeyring
from marketplace.delivery.service import DeliveryService
from marketplace.kit import clock
from marketplace.kit.codelists import currency_minor_units
from marketplace.kit.identifiers import uscc_check_char
from marketplace.kit.money import split, transfer_id
from marketplace.ledger.models import AccountCode, LedgerAccount, Transfer
from marketplace.ledger.service import LedgerService
from marketplace.ledger.settlement import SettlementService
from marketplace.orders.models import OrderStatus
from marketplace.orders.schemas import TradeRequest
from marketplace.orders.service import OrderService
from marketplace.payments.local import LocalGateway

DEMO_ACTOR = "demo"
# Demonstration credentials, printed on purpose: this data is for a local sandbox only.
ADMIN_EMAIL, ADMIN_PASSWORD = "admin@demo.example", "demo-admin-password"
MEMBER_PASSWORD = "demo-member-password"  # noqa: S105


@dataclass(frozen=True)
class DemoOrganization:
    owner_email: str
    owner_name: str
    name: str
    uscc_body: str
    kind: OrganizationKind
    jurisdiction: str
    dsmm_level: int
    max_data_grade: DataGrade
    certifications: tuple[str, ...]
    intermediary: dict[str, Any] | None = field(default=None)


ORGANIZATIONS = (
    DemoOrganization(
        "provider@guiyang-traffic.example",
        "Li Wei",
        "贵阳交通数据科技有限公司 Guiyang Traffic Data Co.",
        "91520100MA6E1T0A0",
        OrganizationKind.PROVIDER,
        "520100",
        3,
        DataGrade.IMPORTANT,
        ("ISO/IEC 27001", "DSMM level 3"),
    ),
    DemoOrganization(
        "provider@qianxin-weather.example",
        "Zhang Min",
        "黔信气象数据服务有限公司 Qianxin Weather Data",
        "91522700MA6H2W0B1",
        OrganizationKind.PROVIDER,
        "522700",
        4,
        DataGrade.IMPORTANT,
        ("ISO/IEC 27001", "DSMM level 4"),
    ),
    DemoOrganization(
        "buyer@zunyi-logistics.example",
        "Wang Fang",
        "遵义智慧物流有限公司 Zunyi Smart Logistics",
        "91520300MA6J3L0C2",
        OrganizationKind.BUYER,
        "520300",
        2,
        DataGrade.GENERAL,
        ("MLPS level 2",),
    ),
    DemoOrganization(
        "assessor@gz-datasec.example",
        "Chen Jing",
        "贵州数安评估技术有限公司 Guizhou Data Security Assessment",
        "91520100MA6K4A0D3",
        OrganizationKind.INTERMEDIARY,
        "520100",
        3,
        DataGrade.IMPORTANT,
        ("ISO/IEC 27001", "CCRC data security assessment"),
        {
            "roles": ["assessor"],
            "fee_disclosure": "Risk assessment CNY 20,000 per product; compliance report CNY 8,000.",
            "retains_no_traded_data": True,
        },
    ),
)


async def seed_demo(session: AsyncSession, rulebook: Rulebook, settings: Settings, *, only_if_empty: bool) -> str:
    if only_if_empty and (await session.execute(select(func.count()).select_from(User))).scalar_one() > 0:
        return "The database already has accounts; demo data not added."
    accounts = AccountService(session)
    admin = await accounts.create_admin(email=ADMIN_EMAIL, password=ADMIN_PASSWORD, name="Demo Admin", actor=DEMO_ACTOR)
    admin_principal = Principal(user_id=admin.id, is_admin=True)
    lines = [
        "Demo data is ready. Log in with POST /api/v1/auth/token {email, password}:",
        f"  administrator  {ADMIN_EMAIL} / {ADMIN_PASSWORD}",
    ]
    owners: dict[str, Principal] = {}
    organization_ids: dict[str, uuid.UUID] = {}
    for spec in ORGANIZATIONS:
        user = await accounts.register(
            RegisterRequest(email=spec.owner_email, password=MEMBER_PASSWORD, name=spec.owner_name)
        )
        owner = Principal(user_id=user.id)
        organization = await accounts.create_organization(
            owner,
            OrganizationCreate(
                name=spec.name,
                uscc=spec.uscc_body + uscc_check_char(spec.uscc_body),
                kind=spec.kind,
                jurisdiction=spec.jurisdiction,
                dsmm_level=spec.dsmm_level,
                max_data_grade=spec.max_data_grade,
                security_certifications=list(spec.certifications),
                intermediary=IntermediaryQualification.model_validate(spec.intermediary) if spec.intermediary else None,
            ),
        )
        admitted, _ = await accounts.request_admission(owner, organization.id, rulebook)
        if admitted.status == OrganizationStatus.UNDER_REVIEW:
            await accounts.decide_admission(admin_principal, organization.id, "approve", "demo qualification reviewed")
        lines.append(f"  {spec.kind.value:<13}  {spec.owner_email} / {MEMBER_PASSWORD}  ({spec.name})")
        owners[spec.owner_email], organization_ids[spec.owner_email] = owner, organization.id
    listed: dict[str, tuple[uuid.UUID, uuid.UUID]] = {}
    lines.extend(await seed_catalog(session, rulebook, settings, owners, organization_ids, listed))
    lines.extend(await demo_trade(session, rulebook, settings, owners, organization_ids, listed, admin_principal))
    lines.append("API documentation: http://127.0.0.1:8000/schema; the catalog as DCAT: /api/v1/catalog.jsonld")
    return "\n".join(lines)


# The demonstration catalog: products of the two providers, taken through the listing stage.

TRAFFIC = "provider@guiyang-traffic.example"
WEATHER = "provider@qianxin-weather.example"
ASSESSOR = "assessor@gz-datasec.example"
# A resident identity number with a valid GB 11643 check character (a published test value): S4 finds it.
LEAKED_RESIDENT_ID = "11010519491231002X"


@dataclass(frozen=True)
class DemoProduct:
    provider: str
    title: str
    description: str
    tags: tuple[str, ...]
    category: str
    industry_code: str
    regions: tuple[str, ...]
    grade: str
    modes: tuple[str, ...]
    scenarios: tuple[str, ...]
    price_minor: int
    sample: str
    plan_kind: str = "one_time"
    personal_fields: tuple[str, ...] = ()  # de-identified personal fields: the product holds PI
    cost_declared: bool = True
    update_frequency: str = "daily"


def _p(provider: str, title: str, description: str, tags: str, category: str, industry: str, regions: str, grade: str,
       modes: str, scenarios: str, price_yuan: int, sample: str, **options: Any) -> DemoProduct:  # fmt: skip
    return DemoProduct(
        provider,
        title,
        description,
        tuple(tags.split()),
        category,
        industry,
        tuple(regions.split()),
        grade,
        tuple(modes.split()),
        tuple(scenarios.split()),
        price_yuan * 100,
        sample,
        **options,
    )


PRODUCTS: tuple[DemoProduct, ...] = (
    # Guiyang Traffic Data: transport, logistics, tourism, commerce, energy
    _p(
        TRAFFIC,
        "贵阳市主干道实时路况 Guiyang arterial road traffic",
        "Five-minute speed and volume per road segment.",
        "traffic 交通 realtime",
        "transport",
        "5431",
        "520100",
        "general",
        "file api",
        "traffic_planning logistics_routing",
        12_000,
        "segment_id,timestamp,avg_speed_kmh,vehicle_count\nGY-0001,2026-10-01T08:00:00+08:00,32.5,118\n"
        "GY-0002,2026-10-01T08:00:00+08:00,41.0,87\nGY-0003,2026-10-01T08:05:00+08:00,18.2,203\n",
    ),
    _p(
        TRAFFIC,
        "遵义市公交客流 Zunyi bus ridership by stop",
        "Hourly boardings and alightings per stop, aggregated.",
        "bus 公交 ridership",
        "transport",
        "5441",
        "520300",
        "general",
        "file",
        "transit_planning",
        8_000,
        "stop_id,hour,boardings,alightings\nZY-101,07,412,96\nZY-102,07,233,140\nZY-103,08,518,77\n",
        plan_kind="subscription",
    ),
    _p(
        TRAFFIC,
        "贵州高速公路货车流量 Guizhou expressway truck flows",
        "Daily heavy-vehicle counts per toll section.",
        "expressway 高速 freight",
        "transport",
        "5431",
        "520000",
        "general",
        "file api",
        "logistics_routing freight_forecasting",
        20_000,
        "section_id,date,axle_class,trucks\nG60-12,2026-09-30,6,1840\nG75-03,2026-09-30,4,922\nS30-07,2026-09-30,6,311\n",
    ),
    _p(
        TRAFFIC,
        "贵阳龙洞堡机场航班准点率 Guiyang airport punctuality",
        "On-time performance per route and day.",
        "aviation 航班 punctuality",
        "transport",
        "5810",
        "520100",
        "general",
        "api",
        "travel_services",
        6_000,
        "route,date,flights,on_time_rate\nKWE-PEK,2026-09-30,14,0.86\nKWE-SHA,2026-09-30,11,0.91\nKWE-CAN,2026-09-30,9,0.78\n",
        plan_kind="metered",
    ),
    _p(
        TRAFFIC,
        "黔南州物流园区仓储周转 Qiannan warehouse turnover",
        "Weekly throughput and occupancy per logistics park.",
        "warehouse 仓储 logistics",
        "commerce",
        "5920",
        "522700",
        "general",
        "file",
        "supply_chain_finance inventory_planning",
        9_500,
        "park_id,week,inbound_t,outbound_t,occupancy\nQN-01,2026-W39,5120,4980,0.82\nQN-02,2026-W39,2210,2305,0.64\n",
    ),
    _p(
        TRAFFIC,
        "贵州快递末端派送时效 Guizhou parcel last-mile times",
        "Median delivery time per county and carrier class.",
        "express 快递 last_mile",
        "commerce",
        "6020",
        "520000",
        "general",
        "api",
        "logistics_routing",
        7_000,
        "county,carrier_class,median_hours,parcels\n520102,national,18.5,22410\n522701,regional,30.2,4102\n",
    ),
    _p(
        TRAFFIC,
        "黄果树景区客流热力 Huangguoshu visitor density",
        "Half-hourly visitor density grid, aggregated to 100 m cells.",
        "tourism 旅游 density",
        "culture_tourism",
        "7861",
        "520400",
        "general",
        "file api",
        "tourism_management",
        5_000,
        "cell_id,slot,visitors\nHGS-0412,2026-10-02T10:00,812\nHGS-0413,2026-10-02T10:00,604\nHGS-0501,2026-10-02T10:30,1033\n",
    ),
    _p(
        TRAFFIC,
        "贵阳市停车场空余泊位 Guiyang parking availability",
        "Free spaces per car park, every five minutes.",
        "parking 停车 realtime",
        "transport",
        "7810",
        "520100",
        "general",
        "api",
        "navigation_services",
        3_000,
        "car_park_id,timestamp,capacity,free\nP-0031,2026-10-01T09:00,420,37\nP-0032,2026-10-01T09:00,180,2\n",
        plan_kind="subscription",
    ),
    _p(
        TRAFFIC,
        "贵州充电桩使用率 Guizhou EV charger utilisation",
        "Hourly utilisation and energy per charging station.",
        "ev 充电 energy",
        "energy",
        "4420",
        "520100 520300",
        "general",
        "file",
        "grid_planning",
        11_000,
        "station_id,hour,utilisation,kwh\nCS-101,18,0.74,412.5\nCS-102,18,0.41,180.2\nCS-205,19,0.88,530.0\n",
    ),
    _p(
        TRAFFIC,
        "网约车出行OD矩阵（去标识化）Ride-hailing OD matrix, de-identified",
        "Origin-destination trip counts between 1 km cells; rider identities removed, k-anonymity k>=20.",
        "ride_hailing 出行 od_matrix",
        "transport",
        "6432",
        "520100",
        "general",
        "file api",
        "traffic_planning",
        18_000,
        "origin_cell,destination_cell,hour,trips,age_band\nC-1021,C-2210,08,412,25-34\nC-1022,C-1190,08,96,35-44\n",
        personal_fields=("age_band",),
    ),
    _p(
        TRAFFIC,
        "公交刷卡出行链（去标识化）Smart-card trip chains, de-identified",
        "Pseudonymised card trip chains, generalised to stop groups and quarter hours.",
        "smart_card 公交 trip_chain",
        "transport",
        "5441",
        "520100",
        "general",
        "api privacy_computing",
        "transit_planning",
        22_000,
        "card_pseudonym,slot,origin_group,destination_group\nP-8f3a,07:15,SG-12,SG-40\nP-19c2,07:30,SG-03,SG-12\n",
        personal_fields=("card_pseudonym",),
    ),
    _p(
        TRAFFIC,
        "贵州省道路运输车辆轨迹 Guizhou freight vehicle trajectories",
        "GNSS trajectories of registered freight vehicles; important data, queried through privacy computing only.",
        "trajectory 轨迹 freight",
        "transport",
        "5431",
        "520000",
        "important",
        "api privacy_computing",
        "freight_forecasting road_safety",
        60_000,
        "vehicle_pseudonym,timestamp,lat_grid,lon_grid,speed_kmh\nV-0a1,2026-09-30T10:00,26.58,106.71,62\n"
        "V-0a2,2026-09-30T10:00,27.70,106.92,48\n",
    ),
    _p(
        TRAFFIC,
        "贵阳市交通信号配时 Guiyang signal timing plans",
        "Signal phase plans per intersection; important data.",
        "signals 信号 intersections",
        "transport",
        "7810",
        "520100",
        "important",
        "api",
        "traffic_planning",
        35_000,
        "intersection_id,plan,cycle_s,green_split\nI-0101,AM_PEAK,120,0.45\nI-0102,AM_PEAK,90,0.52\n",
    ),
    _p(
        TRAFFIC,
        "铁路货运到发量 Railway freight arrivals and departures",
        "Daily tonnage per freight station.",
        "railway 铁路 freight",
        "transport",
        "5320",
        "520100 520200",
        "general",
        "file",
        "freight_forecasting",
        9_000,
        "station,date,arrivals_t,departures_t\n贵阳南,2026-09-30,18200,16450\n六盘水,2026-09-30,22010,24980\n",
    ),
    _p(
        TRAFFIC,
        "贵阳市商圈消费热度 Guiyang retail district footfall",
        "Daily footfall index per shopping district.",
        "retail 消费 footfall",
        "commerce",
        "5129",
        "520100",
        "general",
        "file api",
        "site_selection",
        6_500,
        "district,date,footfall_index\n花果园,2026-10-01,1.42\n南明万达,2026-10-01,1.18\n观山湖,2026-10-01,0.97\n",
    ),
    _p(
        TRAFFIC,
        "六盘水市道路事故黑点 Liupanshui accident black spots",
        "Accident counts per road segment and year.",
        "road_safety 事故 black_spots",
        "transport",
        "7810",
        "520200",
        "general",
        "file",
        "road_safety",
        4_000,
        "segment_id,year,accidents,injuries\nLPS-221,2025,14,9\nLPS-318,2025,11,4\nLPS-402,2025,8,6\n",
    ),
    # Qianxin Weather Data: meteorology, agriculture, environment, energy, healthcare
    _p(
        WEATHER,
        "黔南州逐小时气象观测 Qiannan hourly observations",
        "Temperature, humidity, wind and rain per station.",
        "weather 气象 observations",
        "meteorology",
        "7410",
        "522700",
        "general",
        "file api",
        "agriculture_planning insurance_pricing",
        10_000,
        "station_id,hour,temp_c,rh,wind_ms,rain_mm\n57827,2026-10-01T08,18.2,0.86,2.1,0.0\n57832,2026-10-01T08,17.5,0.91,1.4,0.6\n",
    ),
    _p(
        WEATHER,
        "贵州省短临降水预报 Guizhou nowcast precipitation",
        "Two-hour precipitation nowcasts on a 1 km grid.",
        "nowcast 降水 forecast",
        "meteorology",
        "7410",
        "520000",
        "general",
        "api",
        "flood_warning logistics_routing",
        16_000,
        "cell_id,issued,lead_min,rain_mm\nG-1201,2026-10-01T08:00,30,1.2\nG-1202,2026-10-01T08:00,60,3.4\n",
        plan_kind="subscription",
        update_frequency="continuous",
    ),
    _p(
        WEATHER,
        "茶园小气候监测 Tea garden microclimate",
        "Soil moisture and canopy temperature in tea gardens.",
        "tea 茶叶 microclimate",
        "agriculture",
        "0141",
        "520300 522700",
        "general",
        "file",
        "agriculture_planning",
        5_500,
        "garden_id,date,soil_moisture,canopy_temp_c\nMT-01,2026-09-30,0.31,21.4\nDY-07,2026-09-30,0.27,22.9\n",
    ),
    _p(
        WEATHER,
        "水稻种植区干旱指数 Rice drought index",
        "Weekly drought index per rice-growing township.",
        "rice 水稻 drought",
        "agriculture",
        "0111",
        "520500 520600",
        "general",
        "file api",
        "crop_insurance",
        7_500,
        "township,week,spi,crop_stage\n520502101,2026-W39,-1.2,heading\n520603102,2026-W39,-0.4,ripening\n",
    ),
    _p(
        WEATHER,
        "山区风电场风资源 Mountain wind resource",
        "Ten-minute wind speed and direction at hub height.",
        "wind 风电 resource",
        "energy",
        "4411",
        "520200 522700",
        "general",
        "file",
        "energy_forecasting",
        14_000,
        "mast_id,timestamp,speed_ms,direction_deg\nWM-03,2026-09-30T12:00,7.8,225\nWM-05,2026-09-30T12:00,6.1,210\n",
    ),
    _p(
        WEATHER,
        "光伏电站辐照度 Solar irradiance for PV plants",
        "Global horizontal irradiance per plant, hourly.",
        "solar 光伏 irradiance",
        "energy",
        "4420",
        "520400 522300",
        "general",
        "api",
        "energy_forecasting",
        12_000,
        "plant_id,hour,ghi_wm2,cloud_cover\nPV-11,2026-09-30T12,812,0.2\nPV-12,2026-09-30T12,640,0.5\n",
        plan_kind="metered",
    ),
    _p(
        WEATHER,
        "贵阳市空气质量 Guiyang air quality",
        "Hourly PM2.5, PM10, O3 and NO2 per monitoring site.",
        "air_quality 空气 pm25",
        "environment",
        "7410",
        "520100",
        "general",
        "file api",
        "public_health environmental_research",
        3_500,
        "site_id,hour,pm25,pm10,o3,no2\nGY-AQ1,2026-10-01T08,21,38,44,19\nGY-AQ2,2026-10-01T08,25,41,39,23\n",
    ),
    _p(
        WEATHER,
        "乌江流域水文气象 Wujiang hydrometeorology",
        "Rainfall and river stage per basin station.",
        "hydrology 水文 river",
        "environment",
        "4610",
        "520300 520600",
        "general",
        "file",
        "flood_warning",
        9_000,
        "station_id,hour,rain_mm,stage_m\nWJ-01,2026-10-01T08,2.4,612.3\nWJ-02,2026-10-01T08,0.8,488.9\n",
    ),
    _p(
        WEATHER,
        "中暑风险与门诊量（去标识化）Heat risk and clinic visits, de-identified",
        "Daily heat index with clinic visit counts by age band and township; generalised and aggregated.",
        "heat 健康 clinic",
        "healthcare",
        "8422",
        "522700",
        "general",
        "file api",
        "public_health",
        8_500,
        "township,date,heat_index,visits,age_band\n522701101,2026-07-30,34.1,18,65+\n522701102,2026-07-30,33.2,9,45-64\n",
        personal_fields=("age_band",),
    ),
    _p(
        WEATHER,
        "雷电灾害风险区划 Lightning hazard zoning",
        "Lightning density and hazard grade per 1 km cell.",
        "lightning 雷电 hazard",
        "meteorology",
        "7410",
        "520000",
        "general",
        "file",
        "insurance_pricing site_selection",
        6_000,
        "cell_id,flashes_per_km2,hazard_grade\nL-0101,4.2,3\nL-0102,1.1,1\nL-0103,6.8,4\n",
    ),
    _p(
        WEATHER,
        "气象雷达基数据 Weather radar base data",
        "Reflectivity volumes of the provincial radar network; important data.",
        "radar 雷达 reflectivity",
        "meteorology",
        "7410",
        "520000",
        "important",
        "privacy_computing",
        "flood_warning",
        80_000,
        "radar_id,scan_time,elevation_deg,max_dbz\nZ9851,2026-10-01T08:00,0.5,48\nZ9852,2026-10-01T08:00,1.5,42\n",
    ),
    _p(
        WEATHER,
        "农业保险气象理赔指数 Weather index for crop insurance",
        "Index triggers per township and season.",
        "insurance 保险 index",
        "finance",
        "7410",
        "520500",
        "general",
        "api",
        "crop_insurance",
        13_000,
        "township,season,rain_deficit_mm,trigger\n520502101,2026-summer,82,1\n520502102,2026-summer,12,0\n",
    ),
    # held for review: the samples have gaps, so the declared completeness (97%) is more than 5% above
    # what S5 measures, and an administrator decides whether the claim stands
    _p(
        WEATHER,
        "县域逐日气温（含缺测）County daily temperatures, with gaps",
        "Daily minimum and maximum temperature per county station; some stations missed readings.",
        "temperature 气温 daily",
        "meteorology",
        "7410",
        "520500 520600",
        "general",
        "file",
        "agriculture_planning",
        4_500,
        "station_id,date,tmin_c,tmax_c\n57707,2026-09-30,14.1,\n57713,2026-09-30,,23.8\n57714,2026-09-30,13.0,22.1\n",
    ),
    _p(
        TRAFFIC,
        "安顺市道路施工占道 Anshun roadworks lane closures",
        "Lane closures per road segment and day; some closures lack an end date.",
        "roadworks 施工 closures",
        "transport",
        "7810",
        "520400",
        "general",
        "api",
        "navigation_services",
        2_000,
        "segment_id,start_date,end_date,lanes_closed\nAS-011,2026-09-28,,1\nAS-014,2026-09-29,,2\nAS-020,2026-09-30,2026-10-03,1\n",
    ),
    # deliberately flawed: the listing stage rejects these
    _p(
        TRAFFIC,
        "贵州省综合交通运行核心数据 Provincial transport operations (core)",
        "Network-wide operational data graded core: DSL Art. 21 forbids trading it.",
        "core 核心 operations",
        "transport",
        "5431",
        "520000",
        "core",
        "privacy_computing",
        "traffic_planning",
        100_000,
        "section_id,date,flow\nG60-01,2026-09-30,50210\n",
    ),
    _p(
        WEATHER,
        "国防气象保障核心数据 Defence weather support (core)",
        "Graded core data; never listed.",
        "core 核心 defence",
        "meteorology",
        "7410",
        "520000",
        "core",
        "api",
        "flood_warning",
        100_000,
        "station_id,hour,temp_c\n57816,2026-10-01T08,16.0\n",
    ),
    _p(
        TRAFFIC,
        "出租车营运里程 Taxi operating mileage",
        "Daily mileage per taxi company; the provider declared no cost.",
        "taxi 出租车 mileage",
        "transport",
        "5441",
        "520100",
        "general",
        "file",
        "transit_planning",
        4_000,
        "company,date,vehicles,km\nGY-Taxi-1,2026-09-30,812,301220\nGY-Taxi-2,2026-09-30,440,158300\n",
        cost_declared=False,
    ),
    _p(
        WEATHER,
        "城市积涝点监测 Urban waterlogging points",
        "Waterlogging depth per monitored point; no cost declared.",
        "waterlogging 内涝 urban",
        "environment",
        "7810",
        "520100",
        "general",
        "api",
        "flood_warning",
        5_000,
        "point_id,timestamp,depth_cm\nWL-011,2026-07-12T17:00,22\nWL-012,2026-07-12T17:00,8\n",
        cost_declared=False,
    ),
    _p(
        TRAFFIC,
        "驾培学员考试通过率 Driving school pass rates",
        "Pass rates per school; declared under a code GB/T 4754 lacks.",
        "driving_school 驾培 exams",
        "education",
        "9999",
        "520100",
        "general",
        "file",
        "education_research",
        3_000,
        "school_id,quarter,candidates,pass_rate\nDS-01,2026-Q3,412,0.71\nDS-02,2026-Q3,230,0.64\n",
    ),
    _p(
        WEATHER,
        "景区天气舒适度 Scenic-area comfort index",
        "Comfort index per scenic area, declared under industry 0000.",
        "comfort 舒适度 tourism",
        "culture_tourism",
        "0000",
        "520400",
        "general",
        "api",
        "tourism_management",
        2_500,
        "area,date,comfort_index\n黄果树,2026-10-02,82\n龙宫,2026-10-02,79\n",
    ),
    _p(
        TRAFFIC,
        "客运站实名售票记录 Coach station ticket sales",
        "Ticket sales per route; the sample leaks a resident ID number.",
        "tickets 客运 sales",
        "transport",
        "5441",
        "520100",
        "general",
        "file",
        "transit_planning",
        7_000,
        "ticket_no,route,passenger_id,fare\nT-0001,贵阳-遵义,88XXXXXXXXXXXXXXXX,75\n"
        f"T-0002,贵阳-安顺,{LEAKED_RESIDENT_ID},48\n",
    ),
    _p(
        WEATHER,
        "气象服务热线来电 Weather hotline calls",
        "Call topics per day; the sample leaks a resident ID number.",
        "hotline 热线 calls",
        "meteorology",
        "7410",
        "522700",
        "general",
        "file",
        "service_improvement",
        2_000,
        f"call_id,date,topic,caller_id\nC-01,2026-10-01,rain,{LEAKED_RESIDENT_ID}\nC-02,2026-10-01,frost,anonymous\n",
    ),
)


def _description(spec: DemoProduct, serial: int, organization_id: uuid.UUID, assessor_id: uuid.UUID) -> ProductCreate:
    today = clock.now().date()
    total = spec.price_minor * 6 // 10
    body: dict[str, Any] = {
        "organization_id": str(organization_id),
        "title": spec.title,
        "description": spec.description,
        "tags": list(spec.tags),
        "category": spec.category,
        "industry_code": spec.industry_code,
        "regions": list(spec.regions),
        "grade": spec.grade,
        "data_source": "self_generated",
        "lawful_source_commitment": True,
        "registration_number": f"GZDE-2026-{serial:06d}",
        "permitted_scenarios": list(spec.scenarios),
        "delivery_modes": list(spec.modes),
        "licence": {"scope": "internal analysis and product development", "term_days": 365},
        "dispute_route": "arbitration",
        "cost": {
            "collection_minor": total * 4 // 10,
            "processing_minor": total * 3 // 10,
            "storage_minor": total // 10,
            "compliance_minor": total // 10,
            "other_minor": total - total * 9 // 10,
            "total_minor": total,
            "currency": "CNY",
            "method": "historical_cost",
        }
        if spec.cost_declared
        else None,
        "quality": {
            "normativity": 0.95,
            "completeness": 0.97,
            "accuracy": 0.94,
            "consistency": 0.96,
            "timeliness": 0.92,
            "accessibility": 0.99,
        },
        "provenance": {
            "source_entity": "the provider's own sensors and stations",
            "activities": [
                {"name": "collection", "performed_by": "provider", "started_at": f"{today.year - 1}-01-01T00:00:00Z"}
            ],
        },
        "update_frequency": spec.update_frequency,
        "time_coverage_start": f"{today.year - 1}-01-01",
    }
    issued_on = (today - timedelta(days=60)).isoformat()
    if spec.grade in ("important", "core") or spec.personal_fields:
        body["compliance_report"] = {
            "assessor_organization_id": str(assessor_id),
            "issued_on": issued_on,
            "reference": f"GZDS-CR-{serial:04d}",
        }
    if spec.grade == "important":
        body["risk_assessment"] = {
            "assessor_organization_id": str(assessor_id),
            "issued_on": issued_on,
            "reference": f"GZDS-RA-{serial:04d}",
        }
    if spec.personal_fields:
        body["contains_personal_info"] = True
        body["pi_legal_basis"] = "consent"
        body["consented_purposes"] = list(spec.scenarios)
        body["separate_consent_for_provision"] = True
        body["pi_impact_assessment_on"] = issued_on
        body["deidentification_techniques"] = ["pseudonymisation", "generalisation", "k-anonymity"]
        body["fields"] = [
            {"name": name, "personal": True, "purposes": list(spec.scenarios)} for name in spec.personal_fields
        ]
    return ProductCreate.model_validate(body)


def _plan(spec: DemoProduct) -> PlanCreate:
    if spec.plan_kind == "subscription":
        return PlanCreate(
            kind="subscription",
            price_minor=spec.price_minor // 10,
            currency="CNY",
            pricing_basis="market",
            period_days=30,
        )
    if spec.plan_kind == "metered":
        return PlanCreate(
            kind="metered",
            price_minor=spec.price_minor // 20,
            currency="CNY",
            pricing_basis="market",
            unit_price_minor=5,
            included_calls=10_000,
            monthly_cap_minor=spec.price_minor,
        )
    return PlanCreate(kind="one_time", price_minor=spec.price_minor, currency="CNY", pricing_basis="cost")


async def seed_catalog(
    session: AsyncSession,
    rulebook: Rulebook,
    settings: Settings,
    owners: dict[str, Principal],
    organization_ids: dict[str, uuid.UUID],
    listed: dict[str, tuple[uuid.UUID, uuid.UUID]] | None = None,
) -> list[str]:
    """Describe, price, sample and submit every demo product; a summary of the verdicts. Each listed
    product's (product id, plan id) goes into `listed` under its title."""
    catalog = CatalogService(session)
    statuses: Counter[str] = Counter()
    rejected_by: Counter[str] = Counter()
    for serial, spec in enumerate(PRODUCTS, start=1):
        owner = owners[spec.provider]
        description = _description(spec, serial, organization_ids[spec.provider], organization_ids[ASSESSOR])
        view = await catalog.create(owner, description)
        plan = await catalog.add_plan(owner, view.product.id, _plan(spec))
        blob = store_content_addressed([spec.sample.encode()], settings.sample_dir, settings.max_sample_bytes)
        await catalog.attach_sample(owner, view.product.id, blob, parse_sample(blob.path, CSV))
        submitted, verdict = await catalog.submit(owner, view.product.id, rulebook)
        statuses[submitted.product.status.value] += 1
        if listed is not None and submitted.product.status.value == "listed":
            listed[spec.title] = (view.product.id, plan.id)
        if submitted.product.status.value == "rejected":
            rules = {str(f["check"]).split(".", 1)[0] for f in verdict.findings if f.get("outcome") == "fail"}
            rejected_by.update(rules)
    lines = [
        f"Catalog: {len(PRODUCTS)} products submitted to the listing stage: {statuses['listed']} listed, "
        f"{statuses['under_review']} held for review, {statuses['rejected']} rejected."
    ]
    if rejected_by:
        lines.append("  rejected by: " + ", ".join(f"{rule} ({n})" for rule, n in sorted(rejected_by.items())))
    return lines


# The demonstration trade: the buyer orders a listed product of the traffic provider, end to end.

BUYER = "buyer@zunyi-logistics.example"
TRADE_PRODUCT = PRODUCTS[0]  # Guiyang arterial road traffic: general data, a one-time plan, file delivery
TRADE_SCENARIO = "traffic_planning"


def money(amount_minor: int, currency: str) -> str:
    """e.g. "1,200,000 (12,000.00 CNY)": minor units as stored, then as people read them."""
    places = currency_minor_units(currency) or 0
    whole, part = divmod(amount_minor, 10**places)
    shown = f"{whole:,}" + (f".{part:0{places}d}" if places else "")
    return f"{amount_minor:,} ({shown} {currency})"


async def demo_trade(
    session: AsyncSession,
    rulebook: Rulebook,
    settings: Settings,
    owners: dict[str, Principal],
    organization_ids: dict[str, uuid.UUID],
    listed: dict[str, tuple[uuid.UUID, uuid.UUID]],
    admin: Principal,
) -> list[str]:
    """One complete trade on the local gateway, and what it left in the books."""
    if TRADE_PRODUCT.title not in listed:
        return [f"Demo trade: skipped, {TRADE_PRODUCT.title} is not listed under this rulebook."]
    product_id, plan_id = listed[TRADE_PRODUCT.title]
    buyer, provider = owners[BUYER], owners[TRAFFIC]
    provider_id = organization_ids[TRAFFIC]
    gateway = LocalGateway()
    orders = OrderService(session, settings, rulebook, gateway)
    request = TradeRequest(
        product_id=product_id,
        plan_id=plan_id,
        buyer_organization_id=organization_ids[BUYER],
        scenario=TRADE_SCENARIO,
        delivery_mode="file",
        quantity=1,
        accept_licence_terms=True,
    )
    placed = await orders.place(buyer, request)
    order = placed.order
    flagged = [f"{f.check} ({f.outcome.value})" for f in placed.verdict.failures()]
    lines = [
        f"Demo trade: {BUYER} orders {TRADE_PRODUCT.title} for {TRADE_SCENARIO}, delivered as a file.",
        f"  order: {order.id}",
        f"  verdict: {placed.verdict.decision.value} "
        f"(trade stage, rulebook {placed.verdict.rulebook_fingerprint[:12]}, verdict {placed.stored_verdict.id})",
        f"  flagged checks: {', '.join(flagged) if flagged else 'none'}",
    ]
    if order.status != OrderStatus.ACCEPTED:
        lines.append(f"  status: {order.status.value}; the trade stops here")
        return lines
    await orders.pay(buyer, order.id, None)
    lines += await _demo_delivery(session, rulebook, settings, gateway, provider, buyer, product_id, order.id)
    await orders.confirm(buyer, order.id)
    # The settlement batch commits as it goes: the demo data seeded so far is committed with it.
    settlement = await SettlementService(session, settings, gateway, rulebook).run(DEMO_ACTOR)
    view = await orders.view(admin, order.id)
    order = view.order
    provider_minor, fee_minor = split(order.amount_minor, order.fee_bps)
    lines += [
        f"  status: {order.status.value}",
        "  history: " + " -> ".join(event.to_status.value for event in view.history),
        f"  amount: {money(order.amount_minor, order.currency)}; platform fee {order.fee_bps} bps: "
        f"{money(fee_minor, order.currency)}; provider's share {money(provider_minor, order.currency)}",
        f"  settlement run: {settlement.settled_orders} order(s) settled, "
        + ", ".join(
            f"payout {p.id} of {money(p.amount_minor, p.currency)} {p.status.value}"
            + (f" (gateway reference {p.reference})" if p.reference else "")
            for p in settlement.payouts
            if p.organization_id == provider_id
        ),
        "  ledger movements of the order and its payout (kind: debit -> credit, amount in minor units):",
    ]
    for kind, debit, credit, amount in await _order_transfers(session, order.id, order.payout_id):
        lines.append(f"    {kind.value:<10} {debit} -> {credit}  {amount:,}")
    ledger = LedgerService(session)
    balance = await ledger.balance(provider_id, order.currency)
    revenue = await ledger.account(AccountCode.PLATFORM_REVENUE, order.currency)
    escrow = await ledger.account(AccountCode.ESCROW, order.currency, organization_id=provider_id, order_id=order.id)
    lines += [
        f"  escrow of the order: {money(escrow.credits_posted - escrow.debits_posted, order.currency)}",
        f"  provider balance: available {money(balance.available_minor, order.currency)}, "
        f"pending {money(balance.pending_minor, order.currency)}, "
        f"paid out {money(balance.paid_out_minor, order.currency)}",
        f"  platform revenue: {money(revenue.credits_posted - revenue.debits_posted, order.currency)}",
    ]
    return lines


async def _demo_delivery(
    session: AsyncSession,
    rulebook: Rulebook,
    settings: Settings,
    gateway: LocalGateway,
    provider: Principal,
    buyer: Principal,
    product_id: uuid.UUID,
    order_id: uuid.UUID,
) -> list[str]:
    """The provider hosts the dataset, the buyer takes a signed link and downloads through it."""
    assert isinstance(session.bind, AsyncEngine)
    keyring = DownloadKeyring.load(settings.download_key_dir, settings.download_key_id)
    delivery = DeliveryService(session, settings, rulebook, gateway, keyring, create_sessionmaker(session.bind))
    version = await delivery.catalog.dataset_version(provider, product_id, None)
    blob = store_content_addressed([TRADE_PRODUCT.sample.encode()], settings.dataset_dir, settings.max_dataset_bytes)
    await delivery.host_dataset(provider, version, blob, CSV)
    access = await delivery.open(buyer, order_id)
    assert access.download_path is not None
    query = access.download_path.partition("?")[2]
    params = dict(pair.split("=", 1) for pair in query.split("&"))
    file = await delivery.download(access.licence.id, params)
    return [
        f"  licence: {access.licence.id} ({access.licence.status.value}, {access.licence.delivery_mode})",
        f"  download link: signed for the buyer's owner, valid until {access.expires_at:%Y-%m-%d %H:%M:%S} UTC",
        f"  downloaded: {file.size_bytes:,} bytes, sha256 {file.sha256[:16]}..., receipt recorded",
    ]


async def _order_transfers(
    session: AsyncSession, order_id: uuid.UUID, payout_id: uuid.UUID | None
) -> list[tuple[Any, str, str, int]]:
    """The transfers of the order, and of the payout that paid its provider's share, in the order they were
    posted: (kind, debit account key, credit account key, amount)."""
    debit, credit = aliased(LedgerAccount), aliased(LedgerAccount)
    payout_transfers = [transfer_id(payout_id, step) for step in ("debt", "payout")] if payout_id else []
    query = (
        select(col(Transfer.kind), col(debit.key), col(credit.key), col(Transfer.amount_minor))
        .join(debit, col(debit.id) == col(Transfer.debit_account_id))
        .join(credit, col(credit.id) == col(Transfer.credit_account_id))
        .where(or_(col(Transfer.order_id) == order_id, col(Transfer.id).in_(payout_transfers)))
        .order_by(col(Transfer.created_at), col(Transfer.id))
    )
    return [(row[0], row[1], row[2], row[3]) for row in (await session.execute(query)).all()]
