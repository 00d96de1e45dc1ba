from django.urls import path

from . import dashboard, onboarding, unmatched, views

app_name = "portal"

urlpatterns = [
    path("", views.home, name="home"),
    path("signin/", views.signin, name="signin"),
    path("signin/sent/", views.signin_sent, name="signin_sent"),
    path("signin/link/<str:token>/", views.signin_confirm, name="signin_confirm"),
    path("signout/", views.signout, name="signout"),
    path("requests/", views.my_requests, name="my_requests"),
    path("requests/new/", views.request_new, name="request_new"),
    path("requests/<uuid:public_id>/", views.request_detail, name="request_detail"),
    path("requests/<uuid:public_id>/verify/", views.request_verify, name="request_verify"),
    path("requests/<uuid:public_id>/resend-code/", views.request_resend_code, name="request_resend_code"),
    path("requests/<uuid:public_id>/withdraw/", views.request_withdraw, name="request_withdraw"),
    path("requests/<uuid:public_id>/certificate.json", views.request_certificate_json, name="request_certificate_json"),
    path("requests/<uuid:public_id>/certificate/", views.request_certificate_html, name="request_certificate_html"),
    path("certificates/check/", views.certificate_check, name="certificate_check"),
    path("dashboard/", dashboard.queue, name="dashboard"),
    path("dashboard/requests/<uuid:public_id>/", dashboard.request_detail, name="dashboard_request"),
    path("dashboard/requests/<uuid:public_id>/review/", dashboard.request_review, name="dashboard_review"),
    path("dashboard/requests/<uuid:public_id>/approve/", dashboard.request_approve, name="dashboard_approve"),
    path("dashboard/requests/<uuid:public_id>/deny/", dashboard.request_deny, name="dashboard_deny"),
    path("dashboard/requests/<uuid:public_id>/no-data/", unmatched.request_no_data, name="dashboard_no_data"),
    path("dashboard/requests/<uuid:public_id>/link-subject/", unmatched.request_link_subject,
         name="dashboard_link_subject"),
    path("dashboard/jobs/<uuid:public_id>/", dashboard.job_detail, name="dashboard_job"),
    path("dashboard/jobs/<uuid:public_id>/progress.json", dashboard.job_progress, name="dashboard_job_progress"),
    path("dashboard/certificates/<uuid:public_id>/", dashboard.certificate_html, name="dashboard_certificate"),
    path("dashboard/certificates/<uuid:public_id>.json", dashboard.certificate_json,
         name="dashboard_certificate_json"),
    path("dashboard/models/", dashboard.models_list, name="dashboard_models"),
    path("dashboard/models/<int:pk>/", dashboard.model_lineage, name="dashboard_model"),
    path("dashboard/preparations/", onboarding.preparations_list, name="dashboard_preparations"),
    path("dashboard/preparations/<uuid:public_id>/", onboarding.preparation_detail, name="dashboard_preparation"),
    path("dashboard/models/<int:pk>/sustainability.png", dashboard.model_sustainability_png,
         name="dashboard_model_plot"),
]
